/**
 * The agents' read-only HTTP endpoints (http.bind.address) on a real 3-host cluster: what a
 * load balancer and Prometheus see. The story that matters is the failover: /primary must
 * answer 200 on exactly one host before and after, and never on two hosts at once while the
 * master changes, through a switchover (`efm promote`, the old master's database keeps running
 * and is restarted read-only) and then the loss of the new master's database. A real HAProxy
 * (Debian's package) runs examples/haproxy.cfg with the cluster's addresses and carries writes
 * across the switchover; the status page's event stream shows the new master.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import pg from "pg";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, sleep, threeHosts, waitUntil } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const HOSTS = ["a", "b", "c"] as const;
type Host = (typeof HOSTS)[number];
const HTTP_PORT: Record<Host, number> = { a: 17720, b: 17721, c: 17722 };

// HAProxy listens here: writes (routed by /primary) and reads (by /replica).
const PROXY = { host: "127.0.18.10", write: 17723, read: 17724 };
let haproxy: ChildProcess | null = null;

const url = (h: Host, path: string) => `http://${efm.address(h)}:${HTTP_PORT[h]}${path}`;

async function get(h: Host, path: string): Promise<{ status: number; text: string }> {
  try {
    const r = await fetch(url(h, path), { signal: AbortSignal.timeout(15_000) });
    return { status: r.status, text: await r.text() };
  } catch (err) {
    // No answer at all (agent stopped, connection refused) is what a load balancer sees as down.
    return { status: 0, text: String(err) };
  }
}

/** One answer of /primary, with the time span in which it was asked and answered. */
interface Probe {
  host: Host;
  sent: number;
  received: number;
  status: number;
}

/**
 * Polls /primary on every host, all hosts at once in each round, until stopped. A 200 claims
 * "master, with a lease, database out of recovery" at some instant between sending and
 * receiving; two such claims from different hosts whose spans overlap (as every pair in one
 * round does) would mean two hosts drew writes at once.
 */
class PrimaryWatch {
  readonly rounds: Probe[][] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor() {
    this.loop = (async () => {
      while (this.running) {
        const round = await Promise.all(
          HOSTS.map(async (host): Promise<Probe> => {
            const sent = performance.now();
            const { status } = await get(host, "/primary");
            return { host, sent, received: performance.now(), status };
          }),
        );
        this.rounds.push(round);
        await sleep(20);
      }
    })();
  }

  async stop(): Promise<Probe[][]> {
    this.running = false;
    await this.loop;
    return this.rounds;
  }

  /** Hosts that answered 200 in the latest round. */
  latest(): Host[] {
    return (this.rounds.at(-1) ?? []).filter((p) => p.status === 200).map((p) => p.host);
  }
}

/** Every pair of 200 answers from different hosts whose spans overlap. */
function overlappingPrimaries(rounds: Probe[][]): string[] {
  const ok = rounds.flat().filter((p) => p.status === 200);
  const bad: string[] = [];
  for (const x of ok)
    for (const y of ok)
      if (x.host < y.host && x.sent <= y.received && y.sent <= x.received)
        bad.push(`${x.host} and ${y.host} both answered 200 around t=${Math.round(x.sent)} ms`);
  return bad;
}

/** The value of a metric line (`name{labels} value`) in a Prometheus text page; NaN when absent. */
function metric(page: string, selector: string): number {
  const line = page.split("\n").find((l) => l.startsWith(`${selector} `));
  return line === undefined ? Number.NaN : Number(line.slice(selector.length + 1));
}

/**
 * Writes one row at a time through HAProxy's write port, each over a new connection, and
 * records the rows the database acknowledged with the address of the server that took them.
 */
class Writer {
  readonly acked: { id: number; server: string }[] = [];
  failures = 0;
  private running = true;
  private readonly loop: Promise<void>;

  constructor() {
    this.loop = (async () => {
      while (this.running) {
        const client = new pg.Client({
          ...efm.lab.efmConnection("a"),
          host: PROXY.host,
          port: PROXY.write,
          connectionTimeoutMillis: 3000,
          query_timeout: 3000,
        });
        client.on("error", () => {});
        try {
          await client.connect();
          const r = await client.query<{ id: number; server: string }>(
            "insert into http_writes default values returning id, host(inet_server_addr()) as server",
          );
          this.acked.push(r.rows[0]!);
        } catch {
          // Refused or cut while the master changes: not acknowledged, so not counted.
          this.failures++;
        } finally {
          await client.end().catch(() => {});
        }
        await sleep(50);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** Read a status page's event stream until `until` accepts an update; null when it ends first. */
async function watchPage(
  h: Host,
  until: (status: { hosts: { address: string; role: string }[] }) => boolean,
) {
  const r = await fetch(url(h, "/events"), { signal: AbortSignal.timeout(120_000) });
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const data = buffer
          .slice(0, end)
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
          .join("\n");
        buffer = buffer.slice(end + 2);
        if (data) {
          const msg = JSON.parse(data) as {
            html: string;
            status: { hosts: { address: string; role: string }[] };
          };
          if (until(msg.status)) return msg;
        }
        end = buffer.indexOf("\n\n");
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

async function primaries(): Promise<Host[]> {
  const answers = await Promise.all(HOSTS.map(async (h) => [h, (await get(h, "/primary")).status] as const));
  return answers.filter(([, s]) => s === 200).map(([h]) => h);
}

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-http",
    mode: "loopback",
    hosts: threeHosts(),
    port: 15418,
    addressBase: "127.0.18",
    runDir: "/tmp/efm-e2e-http",
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: 17700, adminPort: 17710 });
  // Each host serves HTTP on its own address (the template leaves it off).
  for (const h of HOSTS) {
    appendFileSync(efm.files[h]!.propertiesFile, `http.bind.address=${efm.address(h)}:${HTTP_PORT[h]}\n`);
  }
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
  await efm.lab.waitStreaming("a", ["b", "c"]);

  // examples/haproxy.cfg as shipped, with this cluster's addresses and ports put in.
  const example = readFileSync(new URL("../examples/haproxy.cfg", import.meta.url), "utf8");
  const servers = HOSTS.map(
    (h) => `    server ${h} ${efm.address(h)}:${efm.lab.efmConnection(h).port} check port ${HTTP_PORT[h]}`,
  ).join("\n");
  const cfg = example
    .replace(/^ {4}bind \*:5000$/m, `    bind ${PROXY.host}:${PROXY.write}`)
    .replace(/^ {4}bind \*:5001$/m, `    bind ${PROXY.host}:${PROXY.read}`)
    .replace(/(^ {4}server node\d .*\n?)+/gm, `${servers}\n`);
  expect(cfg.match(/^ {4}server /gm)).toHaveLength(6);
  const cfgFile = "/tmp/efm-e2e-http/haproxy.cfg";
  writeFileSync(cfgFile, cfg);
  haproxy = spawn("haproxy", ["-db", "-f", cfgFile], { stdio: "ignore" });
  await efm.lab.psql("a", "create table http_writes (id serial primary key)");
  await efm.lab.psql("a", `grant insert, select on http_writes to ${efm.lab.efmConnection("a").user}`);
  await efm.lab.psql("a", `grant usage on sequence http_writes_id_seq to ${efm.lab.efmConnection("a").user}`);
});

afterAll(async () => {
  haproxy?.kill("SIGKILL");
  await suite.cleanup();
});

describe("HTTP endpoints of the agents", () => {
  it("answer /health, /primary and /replica by role, with the reason in the body", async () => {
    for (const h of HOSTS) expect((await get(h, "/health")).status, h).toBe(200);
    const a = await get("a", "/primary");
    expect(a.status, a.text).toBe(200);
    expect(JSON.parse(a.text)).toMatchObject({
      cluster: "acctg",
      node: efm.address("a"),
      role: "Master",
      ok: true,
    });
    for (const h of ["b", "c"] as const) {
      const p = await get(h, "/primary");
      expect(p.status).toBe(503);
      expect(JSON.parse(p.text)).toMatchObject({
        role: "Standby",
        ok: false,
        reason: "this node is Standby",
      });
      expect((await get(h, "/replica")).status).toBe(200);
      const lagged = await get(h, "/replica?lag=1000000000");
      expect(lagged.status, lagged.text).toBe(200);
      expect(typeof JSON.parse(lagged.text).lagBytes).toBe("number");
    }
    expect((await get("a", "/replica")).status).toBe(503);
    const bad = await get("b", "/replica?lag=lots");
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('lag must be a whole number of bytes, got \\"lots\\"');
    expect((await get("a", "/nowhere")).status).toBe(404);
  });

  it("serves a status page that reads without JavaScript and updates through server-sent events", async () => {
    const page = await get("c", "/");
    expect(page.status).toBe(200);
    expect(page.text).toContain("<h1>Cluster acctg</h1>");
    expect(page.text).toContain(`Master: <strong id="master">${efm.address("a")}</strong>`);
    for (const h of HOSTS) expect(page.text).toContain(`data-address="${efm.address(h)}"`);
    expect(page.text).toMatch(
      /<ol id="priority"><li>127\.0\.18\.1[23]<\/li><li>127\.0\.18\.1[23]<\/li><\/ol>/,
    );
    const update = await watchPage("c", (s) => s.hosts.length === 3);
    expect(update?.status.hosts.find((x) => x.role === "Master")?.address).toBe(efm.address("a"));
    expect(update?.html).toContain(`Master: <strong id="master">${efm.address("a")}</strong>`);
  });

  it("/status serves what efm cluster-status-json prints", async () => {
    const http = JSON.parse((await get("b", "/status")).text);
    const cli = (await efm.status("b")).json!;
    expect(Object.keys(http.nodes).sort()).toEqual(Object.keys(cli.nodes).sort());
    for (const [addr, n] of Object.entries(cli.nodes)) {
      const { xlog: _x, ...rest } = n;
      expect(http.nodes[addr]).toMatchObject(rest);
    }
    expect(http.allowednodes).toEqual(cli.allowednodes);
    expect(http.failoverpriority).toEqual(cli.failoverpriority);
    expect(http.messages).toEqual(cli.messages);
  });

  it("/metrics shows role, database, WAL, lease, view and notifications", async () => {
    const master = (await get("a", "/metrics")).text;
    expect(metric(master, 'efm_role{role="Master"}')).toBe(1);
    expect(metric(master, 'efm_role{role="Standby"}')).toBe(0);
    expect(metric(master, "efm_database_up")).toBe(1);
    expect(metric(master, "efm_database_in_recovery")).toBe(0);
    expect(metric(master, "efm_wal_position_bytes")).toBeGreaterThan(0);
    expect(metric(master, "efm_lease_remaining_seconds")).toBeGreaterThan(0);
    expect(metric(master, "efm_view_members")).toBe(3);
    expect(metric(master, "efm_view_quorate")).toBe(1);
    expect(metric(master, "efm_view_epoch")).toBeGreaterThan(0);
    // The start-up mail ("agent running on ...") went out through the e-mail sink.
    expect(master).toMatch(/^efm_notifications_delivered_total\{sink="[^"]*mail[^"]*"\} [1-9]/m);
    expect(master).toContain('efm_check_duration_seconds_count{check="local",result="ok"}');
    expect(metric(master, "efm_process_cpu_seconds_total")).toBeGreaterThan(0);
    const standby = (await get("b", "/metrics")).text;
    expect(metric(standby, 'efm_role{role="Standby"}')).toBe(1);
    expect(metric(standby, "efm_database_in_recovery")).toBe(1);
    expect(metric(standby, "efm_replay_lag_bytes")).toBeGreaterThanOrEqual(0);
  });

  it("/primary answers 200 on exactly one host before and after a switchover, never on two at once", async () => {
    expect(await primaries()).toEqual(["a"]);
    const lsn = await efm.lab.write("a", 20);
    await efm.lab.waitReplayed("b", lsn);
    await efm.lab.waitReplayed("c", lsn);
    const writer = new Writer();
    expect(
      await waitUntil(() => writer.acked.length >= 3, 30_000, 50),
      "writes through HAProxy",
    ).toBeTruthy();
    const watch = new PrimaryWatch();
    await waitUntil(() => watch.rounds.length >= 5, 30_000, 20);
    // b's status page follows the switchover through its event stream.
    const pageSeesNewMaster = watchPage("b", (s) =>
      s.hosts.some((x) => x.role === "Master" && x.address !== efm.address("a")),
    ).catch(() => null);
    const r = await efm.efm("b", ["promote", "acctg"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const status = await efm.waitStatus("b", "a new master", (s) =>
      Object.entries(s.nodes).some(([addr, n]) => n.type === "Master" && addr !== efm.address("a")),
    );
    const newMaster = efm.hostOf(
      Object.entries(status.nodes).find(([, n]) => n.type === "Master")![0],
    ) as Host;
    // Wait for the new master's own answer, then a few more full rounds.
    const seen = await waitUntil(() => watch.latest().join() === newMaster, 60_000, 50);
    const settled = watch.rounds.length;
    await waitUntil(() => watch.rounds.length >= settled + 5, 30_000, 20);
    const rounds = await watch.stop();
    expect(seen, efm.logTails()).toBeTruthy();
    expect(overlappingPrimaries(rounds)).toEqual([]);
    expect(rounds.every((round) => round.filter((p) => p.status === 200).length <= 1)).toBe(true);
    // Exactly one host before the switchover began and after it settled.
    expect(
      rounds.slice(0, 5).every(
        (round) =>
          round
            .filter((p) => p.status === 200)
            .map((p) => p.host)
            .join() === "a",
      ),
    ).toBe(true);
    expect(
      rounds.slice(settled).every(
        (round) =>
          round
            .filter((p) => p.status === 200)
            .map((p) => p.host)
            .join() === newMaster,
      ),
    ).toBe(true);
    expect(await primaries()).toEqual([newMaster]);
    expect((await pageSeesNewMaster)?.status.hosts.find((x) => x.role === "Master")?.address).toBe(
      efm.address(newMaster),
    );
    // HAProxy now sends writes to the new master; no write was ever taken by the old master
    // after the new one took one, and every acknowledged write is on the new master.
    const before = writer.acked.length;
    expect(
      await waitUntil(
        () => writer.acked.slice(before).filter((w) => w.server === efm.address(newMaster)).length >= 3,
        60_000,
        50,
      ),
      "writes through HAProxy after the switchover",
    ).toBeTruthy();
    await writer.stop();
    const servers = writer.acked.map((w) => w.server);
    const firstNew = servers.indexOf(efm.address(newMaster));
    expect(servers.slice(0, firstNew).every((s) => s === efm.address("a"))).toBe(true);
    expect(servers.slice(firstNew).every((s) => s === efm.address(newMaster))).toBe(true);
    const stored = new Set(
      (await efm.lab.psql(newMaster, "select id from http_writes")).map((row) => Number(row.id)),
    );
    expect(writer.acked.filter((w) => !stored.has(w.id))).toEqual([]);
    // The old master's database is running, read-only now, and its agent says so.
    expect(await efm.lab.inRecovery("a")).toBe(true);
    expect(JSON.parse((await get("a", "/primary")).text).ok).toBe(false);
    const page = (await get(newMaster, "/metrics")).text;
    expect(metric(page, 'efm_role{role="Master"}')).toBe(1);
    expect(metric(page, 'efm_promotions_total{result="success"}')).toBe(1);
    expect(metric(page, "efm_promotion_duration_seconds_count")).toBe(1);
    // The coordinator that ran the switchover counted it, with the rule that ended it.
    const coordinated = await Promise.all(
      HOSTS.map(async (h) =>
        metric((await get(h, "/metrics")).text, 'efm_failovers_total{result="promo.result.ok"}'),
      ),
    );
    expect(coordinated.filter((n) => n === 1)).toHaveLength(1);
  });

  it("/primary moves to exactly one host when the new master's database is killed", async () => {
    const from = (await primaries())[0]!;
    const standbys = HOSTS.filter((h) => h !== from && h !== "a");
    const lsn = await efm.lab.write(from, 10);
    for (const h of standbys) await efm.lab.waitReplayed(h, lsn);
    const watch = new PrimaryWatch();
    await waitUntil(() => watch.rounds.length >= 5, 30_000, 20);
    // The status page in a real browser (Debian's chromium), on the old switchover master's
    // host, which stays out of this failover: it must follow it without a reload.
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    const page = await browser.newPage();
    await page.goto(url("a", "/"));
    await page.waitForFunction('document.getElementById("live").textContent === "live"');
    expect(await page.textContent("#master")).toBe(efm.address(from));
    const mark = suite.smtp.mark();
    await efm.lab.killDb(from);
    await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
    const seen = await waitUntil(
      () => {
        const now = watch.latest();
        return now.length === 1 && now[0] !== from ? now[0] : undefined;
      },
      60_000,
      50,
    );
    const settled = watch.rounds.length;
    await waitUntil(() => watch.rounds.length >= settled + 5, 30_000, 20);
    const rounds = await watch.stop();
    expect(seen, efm.logTails()).toBeTruthy();
    expect(overlappingPrimaries(rounds)).toEqual([]);
    expect(
      rounds.slice(0, 5).every(
        (round) =>
          round
            .filter((p) => p.status === 200)
            .map((p) => p.host)
            .join() === from,
      ),
    ).toBe(true);
    expect(
      rounds.slice(settled).every(
        (round) =>
          round
            .filter((p) => p.status === 200)
            .map((p) => p.host)
            .join() === seen,
      ),
    ).toBe(true);
    expect(await efm.lab.inRecovery(seen!)).toBe(false);
    // The page shows the new master (pushed over server-sent events: the page was never reloaded).
    const shown = await page
      .waitForFunction(
        `document.getElementById("master").textContent === ${JSON.stringify(efm.address(seen!))}`,
        null,
        {
          timeout: 30_000,
        },
      )
      .then(
        () => true,
        () => false,
      );
    expect(shown, `page shows ${await page.textContent("#master")}`).toBe(true);
    expect(await page.textContent(`tr[data-address="${efm.address(seen!)}"] .role`)).toBe("Master");
    expect(await page.textContent("#decisions")).toMatch(/\w+\.\w+/);
    await browser.close();
    // The old master's agent runs on without a database: not healthy, not primary.
    expect((await get(from, "/health")).status).toBe(503);
    expect(metric((await get(from, "/metrics")).text, "efm_database_up")).toBe(0);
  });
});
