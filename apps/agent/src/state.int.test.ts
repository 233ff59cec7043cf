import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMember, type Member, type PersistedState } from "@efm/membership";
import { writeFileAtomic } from "@efm/properties-parser";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { readMembershipState, rewriteMembersFile } from "./state.ts";

// Needs root (tmpfs and bind mounts). Reserved: 127.0.17.20-23, port 17803.
const root = process.getuid?.() === 0;
const base = mkdtempSync(join(tmpdir(), "ee17-state-int-"));
const mounts: string[] = [];
const members: Member[] = [];

const mount = (args: string[]): void => {
  execFileSync("mount", args, { stdio: "pipe" });
};

beforeAll(() => {
  if (!root) return;
  for (const d of ["ok", "full", "ro", "etc", "src"]) mkdirSync(join(base, d));
  for (const d of ["full", "ro", "etc", "src"]) {
    mount(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", join(base, d)]);
    mounts.push(join(base, d));
  }
});

afterAll(async () => {
  await Promise.all(members.map((m) => m.stop()));
  for (const m of [...mounts].reverse()) {
    try {
      execFileSync("umount", [m], { stdio: "pipe" });
    } catch {
      // Already gone.
    }
  }
  rmSync(base, { recursive: true, force: true });
});

describe.runIf(root)("a configuration change is acknowledged only once it is on disk", () => {
  const addrs = [20, 21, 22].map((i) => `127.0.17.${i}:17803`);
  const hosts = addrs.map((a) => a.split(":")[0]!);
  const files = ["ok", "full", "ro"].map((d) => join(base, d, "ee17.membership.json"));
  const failed: string[][] = [[], [], []];

  test("three members form a view and store their state", async () => {
    for (const [i, addr] of addrs.entries()) {
      const m = createMember({
        bindAddress: addr,
        clusterName: "ee17state",
        dbPassword: "pw",
        timeout: 300,
        maxTries: 3,
        seeds: addrs.filter((a) => a !== addr),
        initialAllowed: hosts,
        mayFoundAlone: i === 0,
        // What the agent does: the atomic, fsynced writer, throwing on failure.
        persist: (state: PersistedState) => writeFileAtomic(files[i]!, `${JSON.stringify(state)}\n`, 0o640),
      });
      m.on("persistFailed", (e) => failed[i]!.push(e.error));
      members.push(m);
    }
    const formed = members.map(
      (m) =>
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (m.view()?.members.length === 3 && m.view()?.quorate && m.config().voters.length === 3)
              resolve();
          };
          m.on("viewInstalled", check);
          m.on("configCommitted", check);
        }),
    );
    await Promise.all(members.map((m) => m.start()));
    await Promise.all(formed);
    for (const f of files) expect(readMembershipState(f)?.config.voters).toHaveLength(3);
  });

  test("with one state directory full and one read-only, add-node is refused and the old state stays intact", async () => {
    // Fill the 64 KiB tmpfs to the last byte.
    const filler = join(base, "full", "filler");
    try {
      for (;;) writeFileSync(filler, Buffer.alloc(4096), { flag: "a" });
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
    }
    mount(["-o", "remount,ro", join(base, "ro")]);
    const before = [1, 2].map((i) => readMembershipState(files[i]!)!.config.version);
    // The coordinator (lowest address) proposes; the two others cannot store it, so they must
    // not acknowledge it, and without a majority that holds it on disk the change fails.
    await expect(members[0]!.allow("127.0.17.23")).rejects.toThrow();
    expect(failed[1]!.join()).toMatch(/ENOSPC/);
    expect(failed[2]!.join()).toMatch(/EROFS/);
    expect(members[0]!.config().allowed).toContain("127.0.17.23"); // the coordinator's own, uncommitted
    // What the two would start from next time: the last state they did store, whole.
    for (const [k, i] of [1, 2].entries()) {
      const s = readMembershipState(files[i]!)!;
      expect(s.config.version).toBe(before[k]);
      expect(s.config.allowed).not.toContain("127.0.17.23");
    }
    expect(existsSync(join(base, "full", "filler"))).toBe(true);
  }, 30_000);
});

describe.runIf(root)("members file under a directory the agent cannot write", () => {
  test("is rewritten in place when the file itself is writable", () => {
    // A read-only directory holding one writable file: the file is bind-mounted from a
    // writable tmpfs over its place in a read-only one (like /etc/efm owned by root, with
    // acctg.nodes writable by efm).
    const real = join(base, "src", "acctg.nodes");
    writeFileSync(real, "127.0.17.9:7800\n");
    const shown = join(base, "etc", "acctg.nodes");
    writeFileSync(shown, "");
    mount(["--bind", real, shown]);
    mounts.push(shown);
    mount(["-o", "remount,ro", join(base, "etc")]);
    expect(() => writeFileSync(join(base, "etc", "probe"), "x")).toThrow(/EROFS/);
    rewriteMembersFile(shown, [{ host: "127.0.17.20", port: 17803 }]);
    expect(readFileSync(shown, "utf8")).toMatch(/^127\.0\.17\.20:17803$/m);
    expect(readFileSync(shown, "utf8")).not.toContain("127.0.17.9");
  });

  test("says which file when neither is writable", () => {
    const shown = join(base, "ro", "acctg.nodes");
    expect(() => rewriteMembersFile(shown, [{ host: "127.0.17.20", port: 17803 }])).toThrow(
      `cannot rewrite the members file ${shown}`,
    );
  });
});
