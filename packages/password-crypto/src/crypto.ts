import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/** Stable codes for every way encryption or decryption can fail. */
export const PASSWORD_CRYPTO_CODES = [
  "EMPTY_PASSWORD",
  "MALFORMED_TOKEN",
  "UNSUPPORTED_VERSION",
  "WRONG_CLUSTER",
] as const;
export type PasswordCryptoCode = (typeof PASSWORD_CRYPTO_CODES)[number];

/** The one error this package throws. */
export class PasswordCryptoError extends Error {
  readonly code: PasswordCryptoCode;
  constructor(code: PasswordCryptoCode, message: string) {
    super(message);
    this.name = "PasswordCryptoError";
    this.code = code;
  }
}

/** Token format version 1: `01` + nonce (12 bytes) + ciphertext + GCM tag (16 bytes), hex. */
const VERSION = 0x01;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
// A fixed, public salt: the key only binds a token to a cluster name, it is not a secret.
const SALT = Buffer.from("efm-ts/password-crypto/v1", "utf8");
const INFO = Buffer.from("db.password.encrypted", "utf8");

/** The AES-256 key for a cluster: HKDF-SHA256(ikm = cluster name, fixed salt, info). */
export function clusterKey(clusterName: string): Buffer {
  return Buffer.from(hkdfSync("sha256", Buffer.from(clusterName, "utf8"), SALT, INFO, 32));
}

/** Encrypt a database password for `db.password.encrypted`, bound to the cluster name. */
export function encrypt(
  password: string,
  clusterName: string,
  nonce: Buffer = randomBytes(NONCE_BYTES),
): string {
  if (password === "") throw new PasswordCryptoError("EMPTY_PASSWORD", "the password is empty");
  const cipher = createCipheriv("aes-256-gcm", clusterKey(clusterName), nonce);
  cipher.setAAD(Buffer.from(clusterName, "utf8"));
  const body = Buffer.concat([cipher.update(password, "utf8"), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]).toString("hex");
}

/** Decrypt a token made by `encrypt` under the same cluster name. */
export function decrypt(token: string, clusterName: string): string {
  const t = token.trim();
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(t)) {
    throw new PasswordCryptoError(
      "MALFORMED_TOKEN",
      "the encrypted password is not a hexadecimal string from 'efm encrypt'",
    );
  }
  const raw = Buffer.from(t, "hex");
  if (raw[0] !== VERSION) {
    throw new PasswordCryptoError(
      "UNSUPPORTED_VERSION",
      `the encrypted password has format version ${raw[0]}, this agent reads version ${VERSION}; run 'efm encrypt ${clusterName}' again`,
    );
  }
  if (raw.length < 1 + NONCE_BYTES + TAG_BYTES + 1) {
    throw new PasswordCryptoError("MALFORMED_TOKEN", "the encrypted password is too short");
  }
  const nonce = raw.subarray(1, 1 + NONCE_BYTES);
  const body = raw.subarray(1 + NONCE_BYTES, raw.length - TAG_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", clusterKey(clusterName), nonce);
  decipher.setAAD(Buffer.from(clusterName, "utf8"));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
  } catch {
    throw new PasswordCryptoError(
      "WRONG_CLUSTER",
      `the encrypted password was not made for cluster '${clusterName}' (or was altered); run 'efm encrypt ${clusterName}'`,
    );
  }
}
