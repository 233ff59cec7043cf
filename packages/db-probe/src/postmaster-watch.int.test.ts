import { type Cluster, childrenOf, createCluster, downCluster } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionWatch, pgWatchConnector, type WatchEvent } from "./index.ts";
import { readProcStat } from "./postmaster.ts";

// Reserved for this file: 127.0.38.11, port 28200, run folder /tmp/efm-h2-pmwatch.
const runDir = "/tmp/efm-h2-pmwatch";
let lab: Cluster;
/** Processes this test stopped: killed in afterAll whatever happened. */
const stopped: number[] = [];

beforeAll(async () => {
  lab = await createCluster({
    name: "h2-pmwatch",
    runDir,
    port: 28200,
    addressBase: "127.0.38",
    hosts: [{ name: "a", role: "master" }],
  });
});

afterAll(async () => {
  for (const pid of stopped) signal(pid, "SIGKILL");
  for (const pid of stopped)
    while ((await readProcStat(pid)) !== null && !(await isZombie(pid))) await pause();
  await downCluster(runDir);
});

const pause = () => new Promise((r) => setTimeout(r, 20));

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function isZombie(pid: number): Promise<boolean> {
  return (await readProcStat(pid))?.state === "Z";
}

/** The first event of `type`, seen or still to come. */
function record(watch: ConnectionWatch) {
  const events: WatchEvent[] = [];
  const waiters: { type: WatchEvent["type"]; resolve: (e: WatchEvent) => void }[] = [];
  watch.on((e) => {
    events.push(e);
    for (const w of [...waiters]) {
      if (w.type !== e.type) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(e);
    }
  });
  const next = (type: WatchEvent["type"]): Promise<WatchEvent> => {
    const hit = events.find((x) => x.type === type);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => waiters.push({ type, resolve }));
  };
  return { events, next };
}

describe("the monitoring connection watches its postmaster", () => {
  it("reports a kill -9 of the postmaster while every backend is stopped and cannot end the connection", async () => {
    const watch = new ConnectionWatch({
      connector: pgWatchConnector({ ...lab.efmConnection("a"), applicationName: "efm-h2-pmwatch" }),
      connectTimeoutMs: 2_000,
      retryMs: 3_600_000,
    });
    const { events, next } = record(watch);
    watch.start();
    const postmaster = lab.postmasterPid("a");
    // Learned from the backend's pg_backend_pid() and its parent in /proc.
    expect(await next("postmaster")).toMatchObject({ pid: postmaster });
    // Our backend among them: it cannot notice anything, nor close its socket, while stopped.
    const children = childrenOf(postmaster!);
    expect(children.length).toBeGreaterThan(0);
    for (const c of children) {
      stopped.push(c);
      signal(c, "SIGSTOP");
    }
    signal(postmaster!, "SIGKILL");
    const lost = (await next("lost")) as Extract<WatchEvent, { type: "lost" }>;
    watch.stop();
    expect(events.map((e) => e.type)).toEqual(["connected", "postmaster", "dropped", "lost"]);
    expect(lost.cause).toMatchObject({ code: "CONNECTION_LOST", detail: "postmaster-exit" });
    expect(lost.failure).toMatchObject({ code: "REFUSED", detail: "ECONNREFUSED" });
    // Still stopped when the loss was reported: the connection did not end by itself.
    for (const c of children) expect((await readProcStat(c))?.state).toBe("T");
  });
});
