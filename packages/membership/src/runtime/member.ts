import { randomBytes } from "node:crypto";
import { EventEmitter, on } from "node:events";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { hostOf } from "../core/messages.ts";
import { MembershipCore, type QuorumRule } from "../core/protocol.ts";
import { deriveTiming, type Timing } from "../core/timing.ts";
import type {
  ClusterConfig,
  CoreInput,
  Effect,
  MembershipEvent,
  PersistedState,
  ViewInfo,
} from "../core/types.ts";
import { MembershipError } from "../errors.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  deriveClusterKey,
  encodeFrame,
  FrameDecoder,
  WIRE_VERSION,
} from "./frame.ts";

/** The subset of a pino logger we use (pino itself fits). */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** Options of createMember(). */
export interface MemberOptions {
  /** bind.address: `ip:port` we listen on and are known by. */
  readonly bindAddress: string;
  /** The cluster name (the properties file name), part of the key and of every frame. */
  readonly clusterName: string;
  /** The decrypted database password: the cluster key is derived from it. */
  readonly dbPassword: string;
  /** jgroups.timeout (ms), default 5000. */
  readonly timeout?: number;
  /** jgroups.max.tries, default 8. */
  readonly maxTries?: number;
  /** Addresses of the members (.nodes) file. */
  readonly seeds?: readonly string[];
  /** Allowed hosts for a brand-new cluster (no persisted state). */
  readonly initialAllowed?: readonly string[];
  /** State from the last `persist` event (the agent stores it), or null. */
  readonly persisted?: PersistedState | null;
  /** Logger (pino-compatible); silent by default. */
  readonly logger?: Logger;
  /** Cap on one frame in bytes (default 1 MiB). */
  readonly maxFrameBytes?: number;
  /** Testing hook, see QuorumRule. */
  readonly quorumRule?: QuorumRule;
}

/** Runtime-only events, next to the protocol's MembershipEvent. */
export type RuntimeEvent =
  | { readonly type: "persist"; readonly state: PersistedState }
  | { readonly type: "membersFileRewrite"; readonly addresses: readonly string[] }
  | { readonly type: "halted"; readonly reason: "left" | "stopCluster" };

/** Everything a member emits. */
export type MemberEvent = MembershipEvent | RuntimeEvent;

/** A running cluster member. */
export interface Member {
  /** Our identity: address and this start's incarnation. */
  readonly self: { readonly addr: string; readonly inc: string };
  /** The derived timers. */
  readonly timing: Timing;
  /** Listen on bind.address and start discovery. */
  start(): Promise<void>;
  /** Stop without leaving (like a crash for the others, used when the whole cluster stops). */
  stop(): Promise<void>;
  /** Leave gracefully: the others remove us at once and rewrite their members files. */
  leave(): Promise<void>;
  /** Tell every member to stop (efm stop-cluster); members files stay as they are. */
  stopCluster(): Promise<void>;
  /** Add a host to the allowed list (efm add-node); resolves once a majority holds it. */
  allow(host: string): Promise<void>;
  /** Remove a host from the allowed list and R (efm remove-node). */
  disallow(host: string): Promise<void>;
  /** Fire-and-forget application message to a member. */
  send(to: string, payload: unknown): void;
  /** Request/response with a timeout (ms, default 2 x jgroups.timeout). */
  request(to: string, payload: unknown, timeoutMs?: number): Promise<unknown>;
  /** Answer a `request` event. */
  respond(to: string, id: string, payload: unknown): void;
  /** The installed view, or null. */
  view(): ViewInfo | null;
  /** Voter set R and allowed hosts as this member holds them. */
  config(): ClusterConfig;
  /** Our lease end on this member's monotonic clock (see now()). */
  leaseUntil(): number;
  /** The monotonic clock (ms) all times in events use. */
  now(): number;
  /** Subscribe to one event type (typed), or "event" for all; returns an unsubscribe function. */
  on<T extends MemberEvent["type"]>(type: T, fn: (e: Extract<MemberEvent, { type: T }>) => void): () => void;
  on(type: "event", fn: (e: MemberEvent) => void): () => void;
  /** All events as an async iterator (ends when the member stops). */
  events(): AsyncIterableIterator<MemberEvent>;
}

interface Conn {
  socket: net.Socket;
  peer: string | null;
  outbound: boolean;
  decoder: FrameDecoder;
  superseded: boolean;
  pending: Buffer[];
  connected: boolean;
  lastRx: number;
}

/** Parse `ip:port` / `[v6]:port`; null when it is not an address. */
export function parseAddress(addr: string): { host: string; port: number } | null {
  const i = addr.lastIndexOf(":");
  if (i <= 0) return null;
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  const host = hostOf(addr);
  return host.length > 0 ? { host, port } : null;
}

const silent: Logger = { info: () => {}, warn: () => {}, debug: () => {} };
const normHost = (h: string | undefined): string => (h ?? "").replace(/^::ffff:/, "");

/** Create a member: the pure core plus sockets, timers and the key. Call start() to join. */
export function createMember(options: MemberOptions): Member {
  const bind = parseAddress(options.bindAddress);
  if (!bind)
    throw new MembershipError(
      "INVALID_OPTIONS",
      `bind.address ${JSON.stringify(options.bindAddress)} is not ip:port`,
    );
  if (options.clusterName.length === 0) throw new MembershipError("INVALID_OPTIONS", "cluster name is empty");
  let timing: Timing;
  try {
    timing = deriveTiming(options.timeout, options.maxTries);
  } catch (e) {
    throw new MembershipError("INVALID_OPTIONS", (e as Error).message, { cause: e });
  }
  const log = options.logger ?? silent;
  const key = deriveClusterKey(options.clusterName, options.dbPassword);
  const maxFrame = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const self = { addr: options.bindAddress, inc: randomBytes(8).toString("hex") };
  const core = new MembershipCore({
    self: self.addr,
    incarnation: self.inc,
    timing,
    seeds: options.seeds ?? [],
    initialAllowed: options.initialAllowed ?? [],
    persisted: options.persisted ?? null,
    ...(options.quorumRule ? { quorumRule: options.quorumRule } : {}),
  });
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const timers = new Map<string, NodeJS.Timeout>();
  const conns = new Map<string, Conn>(); // canonical connection per peer address
  const all = new Set<Conn>();
  const dialBackoff = new Map<string, number>();
  const pendingRequests = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const pendingAdmin = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  let server: net.Server | null = null;
  let sweeper: NodeJS.Timeout | null = null;
  let running = false;
  let counter = 0;
  const now = (): number => performance.now();

  // Dropped frames are logged at most once per reason and 10 s, with how many were suppressed:
  // a fuzzer or a misconfigured neighbour must not fill the disk.
  const dropLog = new Map<string, { at: number; suppressed: number }>();
  const logDrop = (from: string, reason: string): void => {
    // Key by the kind of reason, not its details (addresses, lengths), so the map stays small.
    const k = reason.replace(/\S*\d\S*/g, "*").slice(0, 80);
    if (dropLog.size > 200) dropLog.clear();
    const e = dropLog.get(k);
    const t = now();
    if (e && t - e.at < 10_000) {
      e.suppressed++;
      return;
    }
    log.warn({ from, reason, suppressed: e?.suppressed ?? 0 }, "membership: dropped frame");
    dropLog.set(k, { at: t, suppressed: 0 });
  };

  const publish = (e: MemberEvent): void => {
    emitter.emit(e.type, e);
    emitter.emit("event", e);
  };

  const feed = (input: CoreInput): void => {
    if (!running) return;
    let effects: Effect[];
    try {
      effects = core.handle(now(), input);
    } catch (err) {
      // The core validates all input; reaching here is a bug. Keep the agent alive and say so.
      log.warn({ err: String(err), input: input.type }, "membership: core rejected an input");
      return;
    }
    for (const e of effects) apply(e);
  };

  const apply = (e: Effect): void => {
    switch (e.type) {
      case "send":
        sendTo(e.to, e.msg);
        return;
      case "setTimer": {
        const old = timers.get(e.id);
        if (old) clearTimeout(old);
        const h = setTimeout(
          () => {
            timers.delete(e.id);
            feed({ type: "timer", id: e.id });
          },
          Math.max(0, e.at - now()),
        );
        h.unref?.();
        timers.set(e.id, h);
        return;
      }
      case "cancelTimer": {
        const old = timers.get(e.id);
        if (old) clearTimeout(old);
        timers.delete(e.id);
        return;
      }
      case "emit":
        onCoreEvent(e.event);
        publish(e.event);
        return;
      case "persist":
        publish({ type: "persist", state: e.state });
        return;
      case "rewriteMembersFile":
        publish({ type: "membersFileRewrite", addresses: e.addresses });
        return;
      case "drop":
        logDrop(e.from, e.reason);
        return;
      case "halt":
        // Let the last frames (leave, stop-cluster) go out before closing.
        setTimeout(() => {
          void shutdown().then(() => publish({ type: "halted", reason: e.reason }));
        }, 50);
        return;
    }
  };

  const onCoreEvent = (ev: MembershipEvent): void => {
    if (ev.type === "response") {
      pendingRequests.get(ev.id)?.resolve(ev.payload);
      pendingRequests.delete(ev.id);
    } else if (ev.type === "requestTimeout") {
      pendingRequests
        .get(ev.id)
        ?.reject(new MembershipError("REQUEST_TIMEOUT", `request ${ev.id} to ${ev.to} timed out`));
      pendingRequests.delete(ev.id);
    } else if (ev.type === "adminResult") {
      const p = pendingAdmin.get(ev.requestId);
      pendingAdmin.delete(ev.requestId);
      if (ev.ok) p?.resolve();
      else p?.reject(new MembershipError("ADMIN_REFUSED", ev.error ?? "refused"));
    } else if (ev.type === "viewInstalled") {
      log.info(
        { epoch: ev.view.epoch, members: ev.view.members, quorate: ev.view.quorate },
        "membership: view installed",
      );
    }
  };

  const envelope = (body: unknown): Buffer =>
    encodeFrame(key, {
      v: WIRE_VERSION,
      cluster: options.clusterName,
      from: self,
      viewId: core.rawView()?.id ?? null,
      body,
    });

  const sendTo = (to: string, msg: unknown): void => {
    if (!running) return;
    let c = conns.get(to);
    if (!c) {
      const d = dial(to);
      if (!d) return;
      c = d;
    }
    const frame = envelope(msg);
    if (c.connected) c.socket.write(frame);
    else if (c.pending.length < 1000) c.pending.push(frame);
  };

  const dial = (to: string): Conn | null => {
    const a = parseAddress(to);
    if (!a) {
      logDrop(to, "not an ip:port address");
      return null;
    }
    const until = dialBackoff.get(to) ?? 0;
    if (now() < until) return null;
    const socket = net.connect({ host: a.host, port: a.port, localAddress: bind.host });
    const c = attach(socket, true, to);
    // A SYN into a black hole would otherwise wait for the kernel's minutes-long retries.
    const connectLimit = setTimeout(() => {
      if (!c.connected) {
        dialBackoff.set(to, now() + Math.min(1000, timing.timeout / 2));
        socket.destroy();
      }
    }, timing.timeout);
    connectLimit.unref?.();
    socket.once("close", () => clearTimeout(connectLimit));
    conns.set(to, c);
    socket.once("connect", () => {
      c.connected = true;
      socket.setNoDelay(true);
      // First frame identifies us to the peer even if the core has nothing to say yet.
      socket.write(envelope({ t: "hello" }));
      for (const f of c.pending) socket.write(f);
      c.pending = [];
    });
    return c;
  };

  const attach = (socket: net.Socket, outbound: boolean, peer: string | null): Conn => {
    const c: Conn = {
      socket,
      peer,
      outbound,
      decoder: new FrameDecoder(key, options.clusterName, maxFrame),
      superseded: false,
      pending: [],
      connected: !outbound,
      lastRx: now(),
    };
    all.add(c);
    socket.on("data", (chunk: Buffer) => onData(c, chunk));
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (c.outbound && c.peer) {
        dialBackoff.set(c.peer, now() + Math.min(1000, timing.timeout / 2));
        logDrop(c.peer, `connection error ${err.code ?? err.message}`);
      }
    });
    socket.on("close", () => {
      all.delete(c);
      if (c.peer && conns.get(c.peer) === c) {
        conns.delete(c.peer);
        if (!c.superseded) feed({ type: "connectionDown", peer: c.peer });
      }
    });
    return c;
  };

  const onData = (c: Conn, chunk: Buffer): void => {
    c.lastRx = now();
    const { envelopes, faults } = c.decoder.push(chunk);
    for (const f of faults) {
      logDrop(c.peer ?? normHost(c.socket.remoteAddress), f.reason);
      if (f.kind === "close") {
        c.socket.destroy();
        return;
      }
    }
    for (const env of envelopes) {
      if (c.peer === null || !c.outbound) {
        // The sender's claimed host must be the host the TCP connection comes from.
        const claimed = parseAddress(env.from.addr);
        if (!claimed || normHost(c.socket.remoteAddress) !== claimed.host.replace(/^::ffff:/, "")) {
          logDrop(normHost(c.socket.remoteAddress), `frame claims to come from ${env.from.addr}`);
          c.socket.destroy();
          return;
        }
        if (c.peer === null) adopt(c, env.from.addr);
        else if (c.peer !== env.from.addr) {
          logDrop(c.peer, "sender changed on one connection");
          c.socket.destroy();
          return;
        }
      } else if (env.from.addr !== c.peer) {
        logDrop(c.peer, `peer answered as ${env.from.addr}`);
        c.socket.destroy();
        return;
      }
      if (typeof env.body === "object" && env.body !== null && (env.body as { t?: unknown }).t === "hello")
        continue;
      feed({ type: "frame", from: env.from, msg: env.body });
    }
  };

  /** One connection per pair: keep the one dialed by the lower address. */
  const adopt = (c: Conn, peer: string): void => {
    c.peer = peer;
    const existing = conns.get(peer);
    if (!existing || existing === c) {
      conns.set(peer, c);
      return;
    }
    const weAreLower = compare(self.addr, peer) < 0;
    if (weAreLower && existing.outbound) {
      // Ours wins; the peer will see this inbound close and use ours.
      c.superseded = true;
      c.socket.end();
      return;
    }
    existing.superseded = true;
    conns.set(peer, c);
    for (const f of existing.pending) c.socket.write(f);
    existing.socket.end();
  };

  const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

  const shutdown = async (): Promise<void> => {
    if (!running) return;
    running = false;
    if (sweeper) clearInterval(sweeper);
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
    for (const c of all) c.socket.destroy();
    all.clear();
    conns.clear();
    for (const p of pendingRequests.values()) p.reject(new MembershipError("NOT_RUNNING", "member stopped"));
    pendingRequests.clear();
    for (const p of pendingAdmin.values()) p.reject(new MembershipError("NOT_RUNNING", "member stopped"));
    pendingAdmin.clear();
    const s = server;
    server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    emitter.emit("__end");
  };

  const waitHalt = (): Promise<void> =>
    new Promise((resolve) => {
      if (!running) return resolve();
      emitter.once("halted", () => resolve());
    });

  const admin = (type: "allow" | "disallow", host: string): Promise<void> => {
    if (!running) return Promise.reject(new MembershipError("NOT_RUNNING", "member is not running"));
    const requestId = `${self.inc}-a${++counter}`;
    return new Promise<void>((resolve, reject) => {
      // The coordinator may die with our request in flight: never leave the caller hanging.
      const limit = setTimeout(() => {
        if (pendingAdmin.delete(requestId)) {
          reject(new MembershipError("REQUEST_TIMEOUT", `${type} ${host}: no answer from the coordinator`));
        }
      }, 4 * timing.timeout);
      limit.unref?.();
      pendingAdmin.set(requestId, {
        resolve: () => {
          clearTimeout(limit);
          resolve();
        },
        reject: (e) => {
          clearTimeout(limit);
          reject(e);
        },
      });
      feed({ type, host, requestId });
    });
  };

  const member: Member = {
    self,
    timing,
    async start() {
      if (running) return;
      const srv = net.createServer((socket) => {
        if (!running) return socket.destroy();
        const c = attach(socket, false, null);
        // A connection that never authenticates must not hold a socket forever.
        const idle = setTimeout(() => {
          if (c.peer === null) socket.destroy();
        }, 2 * timing.timeout);
        idle.unref?.();
        socket.once("close", () => clearTimeout(idle));
      });
      srv.on("error", (err) => log.warn({ err: String(err) }, "membership: server error"));
      await new Promise<void>((resolve, reject) => {
        const onErr = (err: Error): void =>
          reject(
            new MembershipError("BIND_FAILED", `cannot listen on ${options.bindAddress}: ${err.message}`, {
              cause: err,
            }),
          );
        srv.once("error", onErr);
        srv.listen({ host: bind.host, port: bind.port }, () => {
          srv.off("error", onErr);
          resolve();
        });
      });
      server = srv;
      running = true;
      // After a long partition, TCP retransmission backoff can hold an established connection
      // silent for minutes after the network heals: recycle connections that have received
      // nothing for longer than the failure detector tolerates (members heartbeat every T).
      sweeper = setInterval(() => {
        const limit = timing.suspectAfter + timing.timeout;
        for (const c of all) if (c.connected && now() - c.lastRx > limit) c.socket.destroy();
      }, timing.timeout);
      sweeper.unref?.();
      feed({ type: "start" });
    },
    async stop() {
      await shutdown();
    },
    async leave() {
      if (!running) return;
      const done = waitHalt();
      feed({ type: "leave" });
      await done;
    },
    async stopCluster() {
      if (!running) return;
      const done = waitHalt();
      feed({ type: "stopCluster" });
      await done;
    },
    allow: (host) => admin("allow", host),
    disallow: (host) => admin("disallow", host),
    send(to, payload) {
      feed({ type: "send", to, payload });
    },
    request(to, payload, timeoutMs = 2 * timing.timeout) {
      if (!running) return Promise.reject(new MembershipError("NOT_RUNNING", "member is not running"));
      const id = `${self.inc}-r${++counter}`;
      return new Promise((resolve, reject) => {
        pendingRequests.set(id, { resolve, reject });
        feed({ type: "request", to, id, payload, timeoutMs });
      });
    },
    respond(to, id, payload) {
      feed({ type: "respond", to, id, payload });
    },
    view: () => core.currentView(),
    config: () => core.clusterConfig(),
    leaseUntil: () => core.leaseUntil(),
    now,
    on(type: string, fn: (e: never) => void) {
      const f = fn as (e: MemberEvent) => void;
      emitter.on(type, f);
      return () => emitter.off(type, f);
    },
    events() {
      const ac = new AbortController();
      emitter.once("__end", () => ac.abort());
      const it = on(emitter, "event", { signal: ac.signal });
      const out: AsyncIterableIterator<MemberEvent> = {
        async next() {
          try {
            const r = await it.next();
            return r.done
              ? { done: true, value: undefined }
              : { done: false, value: (r.value as [MemberEvent])[0] };
          } catch {
            return { done: true, value: undefined };
          }
        },
        async return() {
          ac.abort();
          return { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return out;
        },
      };
      return out;
    },
  };
  return member;
}
