import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deriveTiming, detectionBound } from "../core/timing.ts";
import { deriveClusterKey } from "./frame.ts";
import { encodeHello, freshNonce } from "./session.ts";

// Real TCP on loopback, addresses 127.0.4.x and port 17401 are reserved for this file.
const PKG = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const PORT = 17401;
const CLUSTER = "embtest";
const PASSWORD = "s3cret-db-password";
const TIMEOUT = 300;
const MAX_TRIES = 3;
const timing = deriveTiming(TIMEOUT, MAX_TRIES);
const addrs = [1, 2, 3, 4, 5].map((i) => `127.0.4.${i}:${PORT}`);
const hosts = addrs.map((a) => a.split(":")[0]!);

interface Child {
  addr: string;
  proc: ChildProcess;
  events: Record<string, unknown>[];
  waiters: (() => void)[];
}
const children: Child[] = [];

function startChild(addr: string, extra: Record<string, unknown> = {}): Child {
  const opts = {
    bindAddress: addr,
    clusterName: CLUSTER,
    dbPassword: PASSWORD,
    timeout: TIMEOUT,
    maxTries: MAX_TRIES,
    seeds: addrs.filter((a) => a !== addr),
    initialAllowed: hosts,
    // The first address plays the primary's agent: the one that may found the cluster alone.
    mayFoundAlone: addr === addrs[0],
    ...extra,
  };
  const proc = spawn(process.execPath, [join(PKG, "test", "member-child.mjs"), JSON.stringify(opts)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const c: Child = { addr, proc, events: [], waiters: [] };
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf("\n");
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
      try {
        c.events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        continue;
      }
      for (const w of c.waiters.splice(0)) w();
    }
  });
  proc.on("exit", () => {
    for (const w of c.waiters.splice(0)) w();
  });
  children.push(c);
  return c;
}

/** Wait until `pred` holds on the child's events; `limitMs` only guards against hanging forever. */
async function waitFor(
  c: Child,
  pred: (events: Record<string, unknown>[]) => boolean,
  limitMs: number,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!pred(c.events)) {
    const left = deadline - Date.now();
    if (left <= 0)
      throw new Error(`${c.addr}: condition not reached; last events ${JSON.stringify(c.events.slice(-3))}`);
    await new Promise<void>((r) => {
      c.waiters.push(r);
      setTimeout(r, Math.min(left, 200));
    });
  }
}

type ViewEv = {
  type: "viewInstalled";
  view: { members: string[]; epoch: number; creator: string; quorate: boolean };
};
const lastView = (c: Child): ViewEv["view"] | null => {
  const v = c.events.filter((e) => e.type === "viewInstalled").at(-1) as ViewEv | undefined;
  return v ? v.view : null;
};
const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().join() === [...b].sort().join();

beforeAll(() => {
  // The children run the built package: compile it once (tsc is fast) so the test is self-contained.
  execFileSync(
    process.execPath,
    [join(PKG, "..", "..", "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    {
      cwd: PKG,
      stdio: "inherit",
    },
  );
});

afterAll(() => {
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
});

describe("membership over real TCP on loopback", () => {
  let members: Child[] = [];

  it("five members started at once form one quorate view", async () => {
    members = addrs.map((a) => startChild(a));
    for (const c of members) {
      await waitFor(
        c,
        () => sameSet(lastView(c)?.members ?? [], addrs) && lastView(c)?.quorate === true,
        20_000,
      );
    }
    const ids = members.map((c) => `${lastView(c)!.epoch}/${lastView(c)!.creator}`);
    expect(new Set(ids).size).toBe(1);
  });

  it("a member with the wrong cluster key is refused and never joins", async () => {
    const stranger = startChild("127.0.4.9:17401", {
      dbPassword: "another-password",
      seeds: addrs,
      initialAllowed: [...hosts, "127.0.4.9"],
    });
    await waitFor(stranger, (ev) => ev.some((e) => e.type === "ready"), 10_000);
    await new Promise((r) => setTimeout(r, 6 * timing.discoveryInterval + 3 * TIMEOUT));
    expect(lastView(stranger)).toBeNull();
    for (const c of members) expect(lastView(c)!.members).not.toContain("127.0.4.9:17401");
    stranger.proc.kill("SIGKILL");
  });

  it("survives 10 s of fuzzing (random bytes, bad MACs, authenticated garbage) and stays in the view", async () => {
    const target = members[0]!;
    const key = deriveClusterKey(CLUSTER, PASSWORD);
    const viewsBefore = members.map((c) => c.events.filter((e) => e.type === "viewInstalled").length);
    const end = Date.now() + 10_000;
    let sent = 0;
    const bodies: unknown[] = [
      { t: "view", view: { id: { epoch: 1e9, creator: "127.0.4.10:17401" }, members: [], subgroups: [] } },
      { t: "hb" },
      { t: "join" },
      { t: "leave" },
      { t: "stopCluster" },
      { t: "mergeReq", mergeId: 5 },
      "just a string",
      null,
      [1, 2, 3],
      { t: "cfgCommit", config: { version: 99, voters: ["127.0.4.10:17401"], allowed: ["127.0.4.10"] } },
    ];
    while (Date.now() < end) {
      await new Promise<void>((resolve) => {
        const s = net.connect({ host: "127.0.4.1", port: PORT, localAddress: "127.0.4.10" });
        s.on("error", () => resolve());
        s.on("close", () => resolve());
        s.on("connect", () => {
          const kind = sent % 4;
          if (kind === 0) s.write(randomBytes(1 + (sent % 300)));
          else if (kind === 1) {
            const len = Buffer.alloc(4);
            len.writeUInt32BE(64);
            s.write(Buffer.concat([len, randomBytes(64)]));
          } else {
            // Authenticated (the fuzzer knows the key) but wrong: foreign sender claims, odd bodies.
            const from =
              kind === 2
                ? { addr: "127.0.4.10:17401", inc: "f00d" }
                : { addr: addrs[1 + (sent % 4)]!, inc: randomBytes(8).toString("hex") };
            const body = bodies[sent % bodies.length];
            // A valid hello (wrong sender), then a session frame it cannot have keys for.
            s.write(encodeHello(key, CLUSTER, from, addrs[0]!, freshNonce()));
            s.write(Buffer.from(JSON.stringify(body) ?? "null"));
          }
          sent++;
          setTimeout(() => s.destroy(), 5);
        });
      });
    }
    expect(sent).toBeGreaterThan(100);
    expect(target.proc.exitCode).toBeNull();
    // Let heartbeats run a full detection period: the target must still be in everyone's view.
    await new Promise((r) => setTimeout(r, timing.suspectAfter + 2 * TIMEOUT));
    for (const c of members) {
      expect(lastView(c)!.members).toContain(target.addr);
      expect(sameSet(lastView(c)!.members, addrs)).toBe(true);
    }
    const viewsAfter = members.map((c) => c.events.filter((e) => e.type === "viewInstalled").length);
    expect(viewsAfter).toEqual(viewsBefore);
  }, 60_000);

  it("a SIGKILLed member is removed by the others", async () => {
    const victim = members[4]!;
    victim.proc.kill("SIGKILL");
    const rest = members.slice(0, 4);
    const bound = detectionBound(timing, 50) + timing.ackTimeout;
    for (const c of rest) {
      // Events arrive line by line: wait for the removal event itself, then check the view.
      await waitFor(
        c,
        (ev) => ev.some((e) => e.type === "memberRemoved" && e.member === victim.addr),
        bound + 5_000,
      );
      expect(lastView(c)!.members).not.toContain(victim.addr);
    }
    // Failed members stay voters (shown DOWN): R is unchanged, the 4 survivors keep quorum of 5.
    for (const c of rest) expect(lastView(c)!.quorate).toBe(true);
  });

  it("a graceful leave removes the member at once and the others rewrite their members file", async () => {
    const leaver = members[3]!;
    const rest = members.slice(0, 3);
    const before = rest.map((c) => c.events.length);
    leaver.proc.stdin!.write("leave\n");
    await new Promise<void>((r) => leaver.proc.on("exit", () => r()));
    for (const [i, c] of rest.entries()) {
      await waitFor(c, (ev) => ev.slice(before[i]).some((e) => e.type === "membersFileRewrite"), 5_000);
      const fresh = c.events.slice(before[i]);
      const view = fresh.find((e) => e.type === "viewInstalled") as { left: string[] } | undefined;
      expect(view?.left).toEqual([leaver.addr]);
      expect(fresh.some((e) => e.type === "memberLeft" && e.member === leaver.addr)).toBe(true);
      // No suspicion: the leave, not the failure detector, removed it.
      expect(fresh.some((e) => e.type === "memberSuspected" && e.member === leaver.addr)).toBe(false);
      const rewrite = fresh.find((e) => e.type === "membersFileRewrite") as
        | { addresses: string[] }
        | undefined;
      expect(rewrite?.addresses).toBeDefined();
      expect(rewrite!.addresses).not.toContain(leaver.addr);
      expect(rewrite!.addresses).toContain(members[0]!.addr === c.addr ? members[1]!.addr : members[0]!.addr);
    }
  });

  it("stop-cluster stops every member without rewriting members files", async () => {
    const rest = members.slice(0, 3);
    const before = rest.map((c) => c.events.length);
    const exits = rest.map(
      (c) => new Promise<void>((r) => (c.proc.exitCode !== null ? r() : c.proc.on("exit", () => r()))),
    );
    rest[1]!.proc.stdin!.write("stop-cluster\n");
    await Promise.all(exits);
    await new Promise((r) => setTimeout(r, 50)); // the last stdout lines of exited children
    for (const [i, c] of rest.entries()) {
      const fresh = c.events.slice(before[i]);
      expect(fresh.some((e) => e.type === "clusterStopping")).toBe(true);
      expect(fresh.some((e) => e.type === "membersFileRewrite")).toBe(false);
    }
  });
});
