#!/usr/bin/env node
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { attachCluster, createCluster, downCluster } from "./cluster.ts";
import { LabError } from "./errors.ts";
import { postmasterPid } from "./pg.ts";
import type { HostRole } from "./state.ts";

const USAGE = `usage: pnpm lab <up|status|down> [options]
  --name <n>           cluster name (default: lab)
  --run-dir <dir>      run folder (default: /tmp/efm-lab-<name>)
  up only:
  --mode <m>           loopback | netns (default: loopback)
  --standbys <n>       number of standbys (default: 2)
  --witnesses <n>      number of witness hosts (default: 0)
  --port <p>           db.port shared by all hosts (default: 5444)
  --address-base <b>   loopback: hosts get <b>.11, <b>.12, ... (default: 127.0.0)
  --subnet <cidr>      netns: test subnet (default: 10.201.0.0/24)
  --prefix <p>         netns: name prefix for namespaces/bridge/veths
  --cluster <name>     also write <name>.properties/.nodes per host
  --password-encrypted <s>  db.password.encrypted for those files`;

/** `pnpm lab up|status|down`: exit 0 on success, 1 on a lab error, 2 on bad usage. */
async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const name = values.name ?? "lab";
  const runDir = path.resolve(values["run-dir"] ?? path.join(os.tmpdir(), `efm-lab-${name}`));
  const command = positionals[0];
  if (command === "up") {
    const hosts: { name: string; role: HostRole }[] = [{ name: "a", role: "master" }];
    const standbys = intOption(values.standbys, "standbys", 2);
    const witnesses = intOption(values.witnesses, "witnesses", 0);
    for (let i = 0; i < standbys; i++) hosts.push({ name: String.fromCharCode(98 + i), role: "standby" });
    for (let i = 0; i < witnesses; i++) hosts.push({ name: `w${i + 1}`, role: "witness" });
    const started = Date.now();
    const cluster = await createCluster({
      name,
      runDir,
      hosts,
      mode:
        values.mode === "netns"
          ? "netns"
          : values.mode === undefined || values.mode === "loopback"
            ? "loopback"
            : badMode(values.mode),
      ...(values.port !== undefined ? { port: intOption(values.port, "port", 5444) } : {}),
      ...(values["address-base"] !== undefined ? { addressBase: values["address-base"] } : {}),
      ...(values.subnet !== undefined ? { subnet: values.subnet } : {}),
      ...(values.prefix !== undefined ? { prefix: values.prefix } : {}),
      log: (line) => process.stderr.write(`lab: ${line}\n`),
    });
    if (values.cluster !== undefined) {
      cluster.writeEfmFiles(values.cluster, { passwordEncrypted: values["password-encrypted"] ?? "" });
    }
    process.stdout.write(`cluster ${name} up in ${Date.now() - started} ms (run folder ${runDir})\n`);
    return status(runDir);
  }
  if (command === "status") return status(runDir);
  if (command === "down") {
    const found = await downCluster(runDir);
    process.stdout.write(found ? `lab in ${runDir} removed\n` : `no lab in ${runDir}\n`);
    return 0;
  }
  process.stderr.write(`${USAGE}\n`);
  return 2;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      "run-dir": { type: "string" },
      mode: { type: "string" },
      standbys: { type: "string" },
      witnesses: { type: "string" },
      port: { type: "string" },
      "address-base": { type: "string" },
      subnet: { type: "string" },
      prefix: { type: "string" },
      cluster: { type: "string" },
      "password-encrypted": { type: "string" },
    },
  });
}

function badMode(mode: string): never {
  throw new LabError("INVALID_OPTIONS", `--mode ${mode}: expected loopback or netns`);
}

function intOption(v: string | undefined, what: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new LabError("INVALID_OPTIONS", `--${what} ${v}: expected a whole number`);
  return Number(v);
}

async function status(runDir: string): Promise<number> {
  const cluster = attachCluster(runDir);
  if (cluster === null) {
    process.stdout.write(`no lab in ${runDir}\n`);
    return 1;
  }
  const s = cluster.state;
  process.stdout.write(
    `cluster ${s.name} (${s.mode}), port ${s.port}, database ${s.database}, efm user ${s.efmUser}\n`,
  );
  process.stdout.write(
    `${"host".padEnd(8)}${"role".padEnd(9)}${"address".padEnd(16)}${"pid".padEnd(9)}${"state".padEnd(10)}lsn\n`,
  );
  for (const h of s.hosts) {
    const pid = postmasterPid(h);
    let state = h.dataDir === null ? "witness" : pid === null ? "down" : "up";
    let lsn = "";
    if (pid !== null) {
      try {
        state = (await cluster.inRecovery(h.name)) ? "standby" : "master";
        lsn = await cluster.lsn(h.name);
      } catch {
        state = "no-answer";
      }
    }
    process.stdout.write(
      `${h.name.padEnd(8)}${h.role.padEnd(9)}${h.address.padEnd(16)}${String(pid ?? "-").padEnd(9)}${state.padEnd(10)}${lsn}\n`,
    );
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`lab: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof LabError && err.code === "INVALID_OPTIONS" ? 2 : 1;
  },
);
