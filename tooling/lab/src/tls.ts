import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { LabError } from "./errors.ts";

/** A certificate and its private key, as files. */
export interface CertFiles {
  cert: string;
  key: string;
}

function openssl(args: string[]): void {
  try {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === "ENOENT") {
      throw new LabError("COMMAND_FAILED", "openssl is not installed (apt-get install openssl)", {
        cause: err,
      });
    }
    throw new LabError("COMMAND_FAILED", `openssl ${args[0]}: ${String(e.stderr ?? e.message).trim()}`, {
      cause: err,
    });
  }
}

/** A private CA (`<dir>/<name>.crt`, `.key`) that signs the hosts' certificates. */
export function makeCa(dir: string, name: string): CertFiles {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const out = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout",
    out.key,
    "-out",
    out.cert,
  ]);
  fs.chmodSync(out.key, 0o600);
  fs.chmodSync(out.cert, 0o644);
  return out;
}

/**
 * A server certificate for `ips` (IP subject alternative names, as libpq and node check them
 * for a connection to an address): signed by `ca`, or self-signed without one.
 */
export function makeServerCert(dir: string, name: string, ips: string[], ca?: CertFiles): CertFiles {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const out = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  const san = `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(",")}`;
  if (ca === undefined) {
    openssl([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-addext",
      san,
      "-keyout",
      out.key,
      "-out",
      out.cert,
    ]);
  } else {
    const csr = path.join(dir, `${name}.csr`);
    const ext = path.join(dir, `${name}.ext`);
    openssl([
      "req",
      "-new",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      out.key,
      "-out",
      csr,
    ]);
    fs.writeFileSync(ext, `${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n`);
    openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.cert,
      "-CAkey",
      ca.key,
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      ext,
      "-out",
      out.cert,
    ]);
    fs.rmSync(csr);
    fs.rmSync(ext);
  }
  fs.chmodSync(out.key, 0o600);
  fs.chmodSync(out.cert, 0o644);
  return out;
}

/** A client certificate for role `user` (CN = user, what `cert` authentication checks), signed by `ca`. */
export function makeClientCert(dir: string, user: string, ca: CertFiles): CertFiles {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const out = { cert: path.join(dir, `${user}-client.crt`), key: path.join(dir, `${user}-client.key`) };
  const csr = path.join(dir, `${user}-client.csr`);
  openssl([
    "req",
    "-new",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    `/CN=${user}`,
    "-keyout",
    out.key,
    "-out",
    csr,
  ]);
  openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-CAcreateserial",
    "-days",
    "2",
    "-out",
    out.cert,
  ]);
  fs.rmSync(csr);
  fs.chmodSync(out.key, 0o600);
  return out;
}
