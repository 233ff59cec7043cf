import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deriveClusterKey } from "@efm/membership";
import { afterAll, describe, expect, test } from "vitest";
import {
  checkPropertiesMode,
  initClusterSecret,
  loadClusterKey,
  readClusterSecret,
  secretPath,
} from "./cluster-key.ts";

const dir = mkdtempSync(join(tmpdir(), "ee17-key-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("cluster key", () => {
  test("without a secret file: a scrypt-stretched key from password and cluster, with a warning", () => {
    const a = loadClusterKey(dir, "acctg", "pw");
    expect(a.warning).toContain(`no cluster secret at ${secretPath(dir, "acctg")}`);
    expect(a.warning).toContain("only as strong as the database password");
    expect(a.key).toHaveLength(32);
    expect(loadClusterKey(dir, "acctg", "pw").key.equals(a.key)).toBe(true);
    expect(loadClusterKey(dir, "sales", "pw").key.equals(a.key)).toBe(false);
    expect(loadClusterKey(dir, "acctg", "pw2").key.equals(a.key)).toBe(false);
    // Not the fast HKDF of earlier versions: one guess now costs a scrypt.
    expect(deriveClusterKey("acctg", "pw").equals(a.key)).toBe(false);
  });

  test("efm init-secret writes 64 hex digits, mode 0600, and keeps an existing secret unless asked", () => {
    const path = secretPath(dir, "sales");
    initClusterSecret(path, false);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const first = readFileSync(path, "utf8");
    expect(first).toMatch(/^[0-9a-f]{64}\n$/);
    expect(() => initClusterSecret(path, false)).toThrow(/already exists/);
    expect(readFileSync(path, "utf8")).toBe(first);
    initClusterSecret(path, true);
    expect(readFileSync(path, "utf8")).not.toBe(first);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  test("with a secret: the key comes from it, not from the password, and no warning", () => {
    const path = secretPath(dir, "hr");
    initClusterSecret(path, false);
    const a = loadClusterKey(dir, "hr", "pw");
    expect(a.warning).toBeNull();
    expect(loadClusterKey(dir, "hr", "another password").key.equals(a.key)).toBe(true);
    expect(a.key.equals(loadClusterKey(join(dir, "nowhere"), "hr", "pw").key)).toBe(false);
    initClusterSecret(path, true);
    expect(loadClusterKey(dir, "hr", "pw").key.equals(a.key)).toBe(false);
  });

  test("a secret open to group or others, or malformed, is refused naming the file", () => {
    const path = secretPath(dir, "ops");
    initClusterSecret(path, false);
    chmodSync(path, 0o640);
    expect(() => readClusterSecret(path)).toThrow(`the cluster secret ${path} has mode 0640`);
    chmodSync(path, 0o604);
    expect(() => loadClusterKey(dir, "ops", "pw")).toThrow(/chmod 0600/);
    writeFileSync(path, "not hex\n", { mode: 0o600 });
    chmodSync(path, 0o600);
    expect(() => readClusterSecret(path)).toThrow(/not 64 hexadecimal digits/);
  });
});

describe("properties file mode", () => {
  test("writable by group or others is an error, readable by others a warning, 0640 fine", () => {
    const path = join(dir, "acctg.properties");
    writeFileSync(path, "x=1\n");
    chmodSync(path, 0o664);
    expect(checkPropertiesMode(path).error).toMatch(/mode 0664: it must not be writable/);
    chmodSync(path, 0o644);
    expect(checkPropertiesMode(path)).toEqual({
      error: null,
      warning: expect.stringMatching(/mode 0644: any local user/),
    });
    chmodSync(path, 0o640);
    expect(checkPropertiesMode(path)).toEqual({ error: null, warning: null });
  });
});
