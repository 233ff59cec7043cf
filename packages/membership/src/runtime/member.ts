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
import { armTimerAt, type TimerHandle } from "./timer.ts";
import { DEFAULT_MAX_FRAME_BYTES, deriveClusterKey, FrameDecoder, PRE_AUTH_MAX_BYTES } from "./frame.ts";
import {
  decodeHello,
  decodeWelcome,
  encodeHello,
  encodeWelcome,
  freshNonce,
  Session,
  sessionKeys,
} from "./session.ts";

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
  /**
   * Silence (ms) after which a member is reported `memberQuiet` before it is suspected (see
   * `quietAfter(timing, remoteTimeoutMs)`); absent or null: never.
   */
  readonly quietAfter?: number | null;
  /** Allowed hosts for a brand-new cluster (no persisted state). */
  readonly initialAllowed?: readonly string[];
  /** State from the last `persist` event (the agent stores it), or null. */
  readonly persisted?: PersistedState | null;
  /**
   * Whether this node may found a new cluster alone when it has no saved voter set and no
   * cluster answers within the join window (jgroups.timeout): the agent says yes when its
   * database is the primary or the operator asked for a bootstrap. Read once, at `start()`.
   * Default false: the node waits for a cluster to join.
   */
  readonly mayFoundAlone?: boolean | (() => boolean);
  /** Logger (pino-compatible); silent by default. */
  readonly logger?: Logger;
  /** Cap on one frame in bytes (default 1 MiB). */
  readonly maxFrameBytes?: number;
  /** Testing hook, see QuorumRule. */
  readonly quorumRule?: QuorumRule;
  /**
   * The cluster key itself (32 bytes), instead of deriving it from the database password;
   * `dbPassword` is then ignored.
   */
  readonly clusterKey?: Buffer;
  /** How long a connection may take to authenticate (ms, default 1000). */
  readonly preAuthMs?: number;
  /** Cap on inbound connections in total (default 64). */
  readonly maxInbound?: number;
  /** Cap on inbound connections from one host (default 16; several members may share a host). */
  readonly maxInboundPerHost?: number;
  /**
   * Store the state durably before anything that depends on it goes out (an acknowledgement of
   * a view or of a configuration change). It must throw when the state is not on disk; the
   * member then withholds those acknowledgements, stops like a crashed member and emits
   * `persistFailed`. Without it, the state only goes out as `persist` events.
   */
  readonly persist?: (state: PersistedState) => void;
}

/** Runtime-only events, next to the protocol's MembershipEvent. */
export type RuntimeEvent =
  | { readonly type: "persist"; readonly state: PersistedState }
  | { readonly type: "membersFileRewrite"; readonly addresses: readonly string[] }
  | { readonly type: "halted"; readonly reason: "left" | "stopCluster" }
  | { readonly type: "persistFailed"; readonly error: string };

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
  /** The id of our cluster (set when it was founded, carried in every frame), or null before we have one. */
  clusterId(): string | null;
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
  /** The peer's address: the dialed one, or (inbound) the one its hello claimed once proven. */
  peer: string | null;
  /** The peer's incarnation, from the handshake. */
  peerInc: string | null;
  /** Inbound: the address the hello claimed, until the first session frame proves it. */
  claimed: string | null;
  /** The remote host as TCP reports it. */
  host: string;
  outbound: boolean;
  /** Inbound from a host that is neither allowed nor a seed (see admit()). */
  stranger: boolean;
  decoder: FrameDecoder;
  superseded: boolean;
  /** Message bodies waiting for the session. */
  pending: unknown[];
  connected: boolean;
  lastRx: number;
  /** Our fresh nonce of this connection's handshake (dialer side). */
  nonce: string;
  session: Session | null;
  /** The peer has proven it holds this connection's session keys. */
  authed: boolean;
  /** Bytes received before authenticating. */
  rxBytes: number;
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
  if (options.clusterKey !== undefined && options.clusterKey.length !== 32)
    throw new MembershipError("INVALID_OPTIONS", "the cluster key must be 32 bytes");
  const key = options.clusterKey ?? deriveClusterKey(options.clusterName, options.dbPassword);
  const preAuthMs = options.preAuthMs ?? 1000;
  const maxInbound = options.maxInbound ?? 64;
  const maxInboundPerHost = options.maxInboundPerHost ?? 16;
  // Connections from hosts that are neither allowed nor seeds get this many slots in all, so
  // that a node refused by the cluster still hears why (guide 4.1.7) while strangers cannot
  // hold more than these few short-lived connections.
  const maxStrangers = 2;
  const maxPreAuthPerHost = 4;
  const maxFrame = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const self = { addr: options.bindAddress, inc: randomBytes(8).toString("hex") };
  const q = options.quietAfter ?? null;
  if (q !== null && !(typeof q === "number" && Number.isFinite(q) && q > 0))
    throw new MembershipError("INVALID_OPTIONS", `quietAfter must be a positive number of ms, got ${q}`);
  const core = new MembershipCore({
    self: self.addr,
    incarnation: self.inc,
    timing,
    seeds: options.seeds ?? [],
    initialAllowed: options.initialAllowed ?? [],
    persisted: options.persisted ?? null,
    quietAfter: q,
    ...(options.quorumRule ? { quorumRule: options.quorumRule } : {}),
  });
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const timers = new Map<string, TimerHandle>();
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
    // A failed durable write stops the member in the middle of a batch: nothing after it (the
    // acknowledgements that promise the state is stored) may go out.
    for (const e of effects) {
      if (!running) break;
      apply(e);
    }
  };

  const apply = (e: Effect): void => {
    switch (e.type) {
      case "send":
        sendTo(e.to, e.msg);
        return;
      case "setTimer": {
        timers.get(e.id)?.cancel();
        timers.delete(e.id);
        let h: TimerHandle;
        try {
          h = armTimerAt(
            now,
            e.at,
            () => {
              timers.delete(e.id);
              feed({ type: "timer", id: e.id });
            },
            `membership ${e.id}`,
            { unref: true },
          );
        } catch (err) {
          // Only a bug in the core gets here: say so, and leave that timer unarmed.
          log.warn({ err: String(err), timer: e.id }, "membership: core asked for an invalid timer");
          return;
        }
        timers.set(e.id, h);
        return;
      }
      case "cancelTimer": {
        timers.get(e.id)?.cancel();
        timers.delete(e.id);
        return;
      }
      case "emit":
        onCoreEvent(e.event);
        publish(e.event);
        return;
      case "persist":
        if (options.persist) {
          try {
            options.persist(e.state);
          } catch (err) {
            const error = (err as Error).message;
            log.warn({ err: error }, "membership: cannot store the membership state; stopping");
            void shutdown();
            publish({ type: "persistFailed", error });
            return;
          }
        }
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

  /** Frame one message on an authenticated connection. */
  const write = (c: Conn, body: unknown): void => {
    c.socket.write(c.session!.seal(body));
  };

  const sendTo = (to: string, msg: unknown): void => {
    if (!running) return;
    let c = conns.get(to);
    if (!c) {
      const d = dial(to);
      if (!d) return;
      c = d;
    }
    if (c.authed) write(c, msg);
    else if (c.pending.length < 1000) c.pending.push(msg);
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
      socket.write(encodeHello(key, options.clusterName, self, to, c.nonce));
      limitPreAuth(c);
    });
    return c;
  };

  /** A connection that has not authenticated within preAuthMs is closed. */
  const limitPreAuth = (c: Conn): void => {
    const t = setTimeout(() => {
      if (!c.authed) {
        logDrop(c.peer ?? c.host, `no authenticated frame within ${preAuthMs} ms`);
        c.socket.destroy();
      }
    }, preAuthMs);
    t.unref?.();
    c.socket.once("close", () => clearTimeout(t));
  };

  const attach = (socket: net.Socket, outbound: boolean, peer: string | null): Conn => {
    const c: Conn = {
      socket,
      peer,
      peerInc: null,
      claimed: null,
      host: normHost(socket.remoteAddress),
      outbound,
      stranger: false,
      decoder: new FrameDecoder(PRE_AUTH_MAX_BYTES),
      superseded: false,
      pending: [],
      connected: !outbound,
      lastRx: now(),
      nonce: freshNonce(),
      session: null,
      authed: false,
      rxBytes: 0,
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
    if (!c.authed) {
      // Before authenticating, a peer gets a few KiB in all, not a frame's worth per chunk.
      c.rxBytes += chunk.length;
      if (c.rxBytes > PRE_AUTH_MAX_BYTES) {
        logDrop(c.peer ?? c.host, `more than ${PRE_AUTH_MAX_BYTES} bytes before authenticating`);
        c.socket.destroy();
        return;
      }
    }
    const { frames, fault } = c.decoder.push(chunk);
    for (const f of frames) {
      if (c.socket.destroyed) return;
      const bad = onFrame(c, f);
      if (bad !== null) {
        logDrop(c.peer ?? c.host, bad);
        c.socket.destroy();
        return;
      }
    }
    if (fault) {
      logDrop(c.peer ?? c.host, fault.reason);
      c.socket.destroy();
    }
  };

  /** Mark a connection authenticated: full frame size, and it no longer counts as pending. */
  const authenticate = (c: Conn): void => {
    c.authed = true;
    c.decoder.setLimit(maxFrame);
  };

  /** Handle one complete frame; returns why the connection must close, or null. */
  const onFrame = (c: Conn, f: Buffer): string | null => {
    if (c.session === null) {
      if (!c.outbound) {
        const h = decodeHello(key, options.clusterName, self.addr, f);
        if (typeof h === "string") return h;
        // The sender's claimed host must be the host the TCP connection comes from.
        const claimed = parseAddress(h.from.addr);
        if (!claimed || c.host !== normHost(claimed.host)) return `hello claims to come from ${h.from.addr}`;
        const nonce = freshNonce();
        const k = sessionKeys(key, options.clusterName, h.from, self, h.nonce, nonce);
        c.session = new Session(k.acceptorToDialer, k.dialerToAcceptor);
        c.claimed = h.from.addr;
        c.peerInc = h.from.inc;
        c.socket.write(encodeWelcome(key, options.clusterName, self, h, nonce));
        return null;
      }
      const w = decodeWelcome(key, options.clusterName, self, c.peer!, c.nonce, f);
      if (typeof w === "string") return w;
      const k = sessionKeys(key, options.clusterName, self, w.from, c.nonce, w.nonce);
      c.session = new Session(k.dialerToAcceptor, k.acceptorToDialer);
      c.peerInc = w.from.inc;
      authenticate(c);
      // The first session frame proves to the acceptor that we hold the keys.
      write(c, { t: "hello" });
      for (const m of c.pending) write(c, m);
      c.pending = [];
      return null;
    }
    const r = c.session.open(f);
    if (!r.ok) return r.reason;
    if (!c.authed) {
      authenticate(c);
      adopt(c, c.claimed!);
    }
    const body = r.body as { t?: unknown; id?: unknown; requestId?: unknown } | null;
    if (typeof body === "object" && body !== null) {
      if (body.t === "hello") return null;
      // A request or admin command is acted on once per id, whatever reaches us twice.
      const id = body.t === "req" ? body.id : body.t === "admin" ? body.requestId : undefined;
      if (typeof id === "string" && !firstSeen(`${c.peer}\u0000${id}`)) {
        logDrop(c.peer!, `duplicate request id ${id}`);
        return null;
      }
    }
    feed({ type: "frame", from: { addr: c.peer!, inc: c.peerInc! }, msg: r.body });
    return null;
  };

  // Request ids seen, oldest first (a Map keeps insertion order); bounded.
  const seenIds = new Map<string, true>();
  const firstSeen = (k: string): boolean => {
    if (seenIds.has(k)) return false;
    seenIds.set(k, true);
    if (seenIds.size > 10_000) seenIds.delete(seenIds.keys().next().value!);
    return true;
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
    for (const m of existing.pending) write(c, m);
    existing.socket.end();
  };

  /** The hosts we expect connections from: allowed hosts, seeds, members and voters. */
  const knownHosts = (): Set<string> => {
    const cfg = core.clusterConfig();
    const hosts = new Set<string>();
    for (const h of cfg.allowed) hosts.add(normHost(h));
    for (const h of options.initialAllowed ?? []) hosts.add(normHost(h));
    for (const a of [...(options.seeds ?? []), ...cfg.voters, ...(core.currentView()?.members ?? [])])
      hosts.add(normHost(hostOf(a)));
    return hosts;
  };

  /** Admission at accept: caps on inbound connections in total, per host and for strangers. */
  const admit = (socket: net.Socket): { ok: true; stranger: boolean } | { ok: false; reason: string } => {
    const host = normHost(socket.remoteAddress);
    let inbound = 0;
    let fromHost = 0;
    let preAuthFromHost = 0;
    let strangers = 0;
    for (const c of all) {
      if (c.outbound) continue;
      inbound++;
      if (c.stranger && !c.authed) strangers++;
      if (c.host === host) {
        fromHost++;
        if (!c.authed) preAuthFromHost++;
      }
    }
    if (inbound >= maxInbound) return { ok: false, reason: `${maxInbound} inbound connections already` };
    if (fromHost >= maxInboundPerHost)
      return { ok: false, reason: `${maxInboundPerHost} inbound connections from this host already` };
    if (preAuthFromHost >= maxPreAuthPerHost)
      return { ok: false, reason: `${maxPreAuthPerHost} unauthenticated connections from this host already` };
    if (knownHosts().has(host)) return { ok: true, stranger: false };
    if (strangers >= maxStrangers || [...all].some((c) => c.stranger && c.host === host && !c.authed))
      return { ok: false, reason: "connection from a host that is neither allowed nor a seed" };
    return { ok: true, stranger: true };
  };

  const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

  const shutdown = async (): Promise<void> => {
    if (!running) return;
    running = false;
    if (sweeper) clearInterval(sweeper);
    for (const t of timers.values()) t.cancel();
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
        const verdict = admit(socket);
        if (!verdict.ok) {
          logDrop(normHost(socket.remoteAddress), `closed at accept: ${verdict.reason}`);
          socket.destroy();
          return;
        }
        // Small frames go out when written, in both directions: with Nagle's algorithm, a
        // second frame written before the first is acknowledged (an answer right after another)
        // waits for the peer's delayed ACK, about 40 ms on Linux.
        socket.setNoDelay(true);
        const c = attach(socket, false, null);
        c.stranger = verdict.stranger;
        // A connection that does not authenticate at once must not hold a socket.
        limitPreAuth(c);
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
      const f = options.mayFoundAlone;
      feed({ type: "start", mayFoundAlone: typeof f === "function" ? f() : f === true });
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
    clusterId: () => core.clusterId(),
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
