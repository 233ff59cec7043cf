import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deriveTiming, detectionBound } from "../core/timing.ts";
import { deriveClusterKey, FrameDecoder, PRE_AUTH_MAX_BYTES } from "./frame.ts";
import { createMember, type Member } from "./member.ts";
import { decodeWelcome, encodeHello, freshNonce, Session, sessionKeys } from "./session.ts";

// Real TCP on loopback. Reserved for this file: addresses 127.0.17.1-127.0.17.9 and
// 127.0.17.50-127.0.17.69 (attackers), ports 17800-17802.
const PKG = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLUSTER = "ee17attack";
const PASSWORD = "attack-test-password";
const TIMEOUT = 500;
const MAX_TRIES = 4;
const timing = deriveTiming(TIMEOUT, MAX_TRIES);

interface Child {
  addr: string;
  proc: ChildProcess;
  events: Record<string, unknown>[];
  waiters: (() => void)[];
}
const children: Child[] = [];
const inProcess: Member[] = [];
const sockets: net.Socket[] = [];

function startChild(addr: string, opts: Record<string, unknown>): Child {
  const all = {
    bindAddress: addr,
    clusterName: CLUSTER,
    dbPassword: PASSWORD,
    timeout: TIMEOUT,
    maxTries: MAX_TRIES,
    ...opts,
  };
  const proc = spawn(process.execPath, [join(PKG, "test", "member-child.mjs"), JSON.stringify(all)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const c: Child = { addr, proc, events: [], waiters: [] };
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
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
  pred: (ev: Record<string, unknown>[]) => boolean,
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

const lastView = (c: Child): { members: string[]; quorate: boolean; voters: string[] } | null => {
  const v = c.events.filter((e) => e.type === "viewInstalled").at(-1) as
    | { view: { members: string[]; quorate: boolean; voters: string[] } }
    | undefined;
  return v ? v.view : null;
};
const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().join() === [...b].sort().join();

/** Open a connection from `from` (a loopback address) to `to`; resolves once connected. */
function connect(from: string, to: string): Promise<net.Socket> {
  const [host, port] = [to.slice(0, to.lastIndexOf(":")), Number(to.slice(to.lastIndexOf(":") + 1))];
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress: from });
    sockets.push(s);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}
/** Resolves once the socket is closed; reads (and discards) what arrives, or a FIN would wait unread. */
const closed = (s: net.Socket): Promise<void> =>
  new Promise((r) => {
    if (s.destroyed) return r();
    s.once("close", () => r());
    s.resume();
  });

beforeAll(() => {
  // The children run the built package: compile it once so the test is self-contained.
  execFileSync(
    process.execPath,
    [join(PKG, "..", "..", "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    { cwd: PKG, stdio: "inherit" },
  );
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
  await Promise.all(inProcess.map((m) => m.stop()));
});

describe("an unauthenticated flood does not stall a member", () => {
  const addrs = [1, 2, 3].map((i) => `127.0.17.${i}:17800`);
  const hosts = addrs.map((a) => a.slice(0, a.lastIndexOf(":")));
  let members: Child[] = [];

  it("three members form a quorate view", async () => {
    members = addrs.map((a) =>
      startChild(a, {
        seeds: addrs.filter((x) => x !== a),
        initialAllowed: hosts,
        mayFoundAlone: a === addrs[0],
      }),
    );
    // Formed once every member is a voter too: R grows one voter at a time after the founder,
    // and each step installs the same members again, which the flood test must not see.
    for (const c of members)
      await waitFor(
        c,
        () =>
          sameSet(lastView(c)?.members ?? [], addrs) &&
          lastView(c)?.quorate === true &&
          sameSet(lastView(c)?.voters ?? [], addrs),
        20_000,
      );
  });

  it("slow, oversized and junk connections from a peer host and from strangers are all cut off; no suspicion, no view change, no lease loss", async () => {
    const target = addrs[0]!;
    const before = members.map((c) => c.events.length);
    const attacks: Promise<void>[] = [];
    let opened = 0;
    let cutOff = 0;
    // Each attack connection writes until the target closes it; we never close one ourselves,
    // so counting closes counts the target's decisions.
    const attack = async (from: string, kind: "trickle" | "junk" | "slow"): Promise<void> => {
      let s: net.Socket;
      try {
        s = await connect(from, target);
      } catch {
        return; // refused at accept before the connection completed: also cut off
      }
      opened++;
      const gone = closed(s);
      s.on("error", () => {});
      if (kind === "trickle") {
        // The cost model of the old decoder: a 1 MiB frame announced, then fed 1 KiB at a time.
        const head = Buffer.alloc(4);
        head.writeUInt32BE(1024 * 1024 - 1);
        s.write(head);
        const chunk = randomBytes(1024);
        const pump = (): void => {
          if (s.destroyed) return;
          while (s.write(chunk)) if (s.destroyed) return;
          s.once("drain", pump);
        };
        pump();
      } else if (kind === "junk") {
        s.write(randomBytes(600));
      } else {
        // One byte now and then: only the pre-authentication deadline ends this one.
        s.write(Buffer.from([0]));
      }
      await gone;
      cutOff++;
    };
    // Four rounds: 8 trickles and 8 junk connections from a member's host, 4 slow ones from the
    // other member's host, 8 trickles from two strangers, all at once.
    for (let round = 0; round < 4; round++) {
      const wave: Promise<void>[] = [];
      for (let i = 0; i < 8; i++) wave.push(attack(hosts[1]!, "trickle"), attack(hosts[1]!, "junk"));
      for (let i = 0; i < 4; i++)
        wave.push(attack(hosts[2]!, "slow"), attack(`127.0.17.${50 + (i % 2)}`, "trickle"));
      for (let i = 0; i < 4; i++) wave.push(attack(`127.0.17.${52 + i}`, "junk"));
      attacks.push(...wave);
      await Promise.all(wave);
    }
    await Promise.all(attacks);
    expect(opened).toBeGreaterThan(0);
    expect(cutOff).toBe(opened);
    // A full detection period after the attack: had the target stalled, someone would have
    // suspected it or lost the lease, and a view would have changed.
    await new Promise((r) => setTimeout(r, timing.suspectAfter + 2 * TIMEOUT));
    for (const [i, c] of members.entries()) {
      const fresh = c.events.slice(before[i]);
      expect(
        fresh.filter((e) =>
          ["memberSuspected", "leaseLost", "viewInstalled", "quorumLost"].includes(String(e.type)),
        ),
      ).toEqual([]);
      expect(sameSet(lastView(c)!.members, addrs)).toBe(true);
    }
  }, 120_000);
});

describe("admission at accept", () => {
  const addr = "127.0.17.4:17801";
  it("gives strangers two slots in all and a host four unauthenticated connections", async () => {
    // A long pre-authentication deadline keeps the first connections open for the whole test,
    // so each refusal below can only come from the caps.
    const c = startChild(addr, {
      seeds: [],
      initialAllowed: ["127.0.17.4", "127.0.17.5"],
      mayFoundAlone: true,
      preAuthMs: 120_000,
    });
    await waitFor(c, (ev) => ev.some((e) => e.type === "ready"), 10_000);
    const state = (s: net.Socket) => ({ open: !s.destroyed });
    const s1 = await connect("127.0.17.60", addr);
    const s2 = await connect("127.0.17.61", addr);
    // The accept queue is served in order: the target has counted s1 and s2 before s3.
    const s3 = await connect("127.0.17.62", addr);
    await closed(s3);
    const s4 = await connect("127.0.17.60", addr).catch(() => null);
    if (s4) await closed(s4);
    expect([s1, s2].map(state)).toEqual([{ open: true }, { open: true }]);
    const peers = [];
    for (let i = 0; i < 4; i++) peers.push(await connect("127.0.17.5", addr));
    const fifth = await connect("127.0.17.5", addr);
    await closed(fifth);
    expect(peers.map(state)).toEqual(peers.map(() => ({ open: true })));
    // Before authenticating a connection gets a few KiB in all, however it frames them.
    peers[0]!.on("error", () => {});
    peers[0]!.write(randomBytes(PRE_AUTH_MAX_BYTES + 1));
    await closed(peers[0]!);
    // The target is still reachable for a peer that speaks the protocol.
    expect(c.proc.exitCode).toBeNull();
  }, 60_000);
});

describe("captured frames and commands cannot be replayed", () => {
  // P runs in this process so its writes can be captured as a sniffer on the wire would see
  // them; its address is the lowest, so it is the coordinator.
  const P = "127.0.17.6:17802";
  const others = ["127.0.17.7:17802", "127.0.17.8:17802"];
  const all = [P, ...others];
  const hosts = all.map((a) => a.slice(0, a.lastIndexOf(":")));
  const captured = new Map<net.Socket, Buffer[]>();
  let p: Member;
  let x: Child;
  let y: Child;
  const realWrite = net.Socket.prototype.write;

  it("a cluster of three forms, with one member's traffic captured", async () => {
    // Capture what P writes to 127.0.17.7, per connection.
    net.Socket.prototype.write = function (this: net.Socket, data: unknown, ...rest: unknown[]) {
      const toX = this.remoteAddress === "127.0.17.7" && this.localAddress === "127.0.17.6";
      if (toX && Buffer.isBuffer(data)) {
        const list = captured.get(this) ?? [];
        list.push(Buffer.from(data));
        captured.set(this, list);
      }
      return (realWrite as (...a: unknown[]) => boolean).call(this, data, ...rest);
    } as typeof net.Socket.prototype.write;
    p = createMember({
      bindAddress: P,
      clusterName: CLUSTER,
      dbPassword: PASSWORD,
      timeout: TIMEOUT,
      maxTries: MAX_TRIES,
      seeds: others,
      initialAllowed: hosts,
      mayFoundAlone: true,
    });
    inProcess.push(p);
    x = startChild(others[0]!, { seeds: [P, others[1]], initialAllowed: hosts });
    y = startChild(others[1]!, { seeds: [P, others[0]], initialAllowed: hosts });
    await p.start();
    for (const c of [x, y])
      await waitFor(
        c,
        () =>
          sameSet(lastView(c)?.members ?? [], all) &&
          lastView(c)?.quorate === true &&
          sameSet(lastView(c)?.voters ?? [], all),
        20_000,
      );
  }, 30_000);

  /** Send P -> X a request and wait until X reports it; returns its id. */
  const markRequest = async (tag: string): Promise<string> => {
    void p.request(others[0]!, { cmd: tag }, 60_000).catch(() => {});
    await waitFor(
      x,
      (ev) =>
        ev.some((e) => e.type === "request" && JSON.stringify(e.payload) === JSON.stringify({ cmd: tag })),
      10_000,
    );
    return String(
      x.events.find((e) => e.type === "request" && (e.payload as { cmd?: string }).cmd === tag)!.id,
    );
  };
  const requestsWith = (tag: string) =>
    x.events.filter((e) => e.type === "request" && (e.payload as { cmd?: string }).cmd === tag).length;

  it("a captured connection replayed to its receiver is closed without a single command taking effect", async () => {
    await markRequest("promote-once");
    const stream = [...captured.values()].find((l) => Buffer.concat(l).includes("promote-once"));
    expect(stream).toBeDefined();
    for (let i = 0; i < 3; i++) {
      const s = await connect("127.0.17.6", others[0]!);
      s.on("error", () => {});
      s.write(Buffer.concat(stream!));
      await closed(s);
    }
    // X prints events in the order it handles frames: once the marker is out, any effect of
    // the replays would be out too.
    await markRequest("marker-1");
    expect(requestsWith("promote-once")).toBe(1);
    expect(sameSet(lastView(x)!.members, all)).toBe(true);
  }, 30_000);

  it("a key holder re-sending a request id over a new session is ignored the second time", async () => {
    const key = deriveClusterKey(CLUSTER, PASSWORD);
    const sendOverSession = async (bodies: unknown[]): Promise<net.Socket> => {
      const s = await connect("127.0.17.6", others[0]!);
      s.on("error", () => {});
      const nonce = freshNonce();
      s.write(encodeHello(key, CLUSTER, p.self, others[0]!, nonce));
      const dec = new FrameDecoder(PRE_AUTH_MAX_BYTES);
      const welcome = await new Promise<Buffer>((resolve) =>
        s.once("data", (d) => resolve(dec.push(d).frames[0]!)),
      );
      const w = decodeWelcome(key, CLUSTER, p.self, others[0]!, nonce, welcome);
      if (typeof w === "string") throw new Error(w);
      const k = sessionKeys(key, CLUSTER, p.self, w.from, nonce, w.nonce);
      const session = new Session(k.dialerToAcceptor, k.acceptorToDialer);
      s.write(session.seal({ t: "hello" }));
      for (const b of bodies) s.write(session.seal(b));
      return s;
    };
    // Every message names the cluster id (wire version 3).
    const req = (id: string, cmd: string) => ({ t: "req", id, payload: { cmd }, cid: p.clusterId() });
    const s1 = await sendOverSession([req("ee17-dup-1", "remove-node-once")]);
    await waitFor(x, () => requestsWith("remove-node-once") === 1, 10_000);
    const s2 = await sendOverSession([req("ee17-dup-1", "remove-node-once"), req("ee17-dup-2", "marker-2")]);
    // Frames on one connection are handled in order: the marker comes after the duplicate.
    await waitFor(x, () => requestsWith("marker-2") === 1, 10_000);
    expect(requestsWith("remove-node-once")).toBe(1);
    s1.destroy();
    s2.destroy();
  }, 30_000);

  it("replayed heartbeats do not keep a stopped member in the view", async () => {
    const streams = [...captured.values()].map((l) => Buffer.concat(l));
    net.Socket.prototype.write = realWrite;
    await p.stop();
    let replaying = true;
    let replays = 0;
    const replay = (async () => {
      while (replaying) {
        for (const bytes of streams) {
          const s = await connect("127.0.17.6", others[0]!).catch(() => null);
          if (!s) continue;
          s.on("error", () => {});
          s.write(bytes);
          // A stream that ends in a valid hello waits for the pre-authentication deadline.
          await closed(s);
          replays++;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const bound = detectionBound(timing, 100) + timing.ackTimeout + 10_000;
    const removed = (ev: Record<string, unknown>[]) =>
      ev.some((e) => e.type === "memberRemoved" && e.member === P) &&
      !(lastView(x)?.members ?? [P]).includes(P);
    try {
      await waitFor(x, removed, bound);
    } finally {
      replaying = false;
      await replay;
    }
    expect(lastView(x)!.members).not.toContain(P);
    expect(replays).toBeGreaterThan(0);
  }, 60_000);
});
