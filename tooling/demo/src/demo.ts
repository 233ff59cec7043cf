#!/usr/bin/env node
/**
 * The README's main job: a 3-host PostgreSQL cluster on loopback with an agent on each
 * host, a live failover after the master database is killed, the old master brought back as a
 * standby, a second failover when the new master's database is killed, a switchover back to
 * the original master (`efm promote -switchover`) while rows are written, and a clean teardown.
 * `--keep` leaves everything running and prints how to use it.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, openSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, downCluster } from "@efm/lab";
import { encrypt } from "@efm/password-crypto";
import { SMTPServer } from "smtp-server";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const efmBin = join(repo, "bin", "efm");
const agentBin = join(repo, "bin", "efm-agent");
const CLUSTER = "acctg";
/** Port of each agent's HTTP endpoints and status page (http.bind.address) in the demo. */
const HTTP_PORT = 17820;
const keep = process.argv.includes("--keep");
const runDir = process.env.EFM_DEMO_DIR ?? "/tmp/efm-demo";
const hostNames = ["db1", "db2", "db3"];

const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A mail server on loopback that prints every notification it receives. */
async function startMailSink(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, _session, done) {
      let raw = "";
      stream.on("data", (c: Buffer) => {
        raw += c.toString("utf8");
      });
      stream.on("end", () => {
        const subject = /^Subject: (.*)$/m.exec(raw)?.[1] ?? "(no subject)";
        process.stdout.write(`   \x1b[36m[mail]\x1b[0m ${subject}\n`);
        done();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.server.address() as { port: number }).port;
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function efm(configDir: string, runFolder: string, args: string[]): { status: number; out: string } {
  try {
    const out = execFileSync(efmBin, ["--config-dir", configDir, ...args], {
      env: { ...process.env, EFM_RUN_DIR: runFolder },
      encoding: "utf8",
    });
    return { status: 0, out };
  } catch (err) {
    const e = err as { status?: number; stdout?: string };
    return { status: e.status ?? 1, out: e.stdout ?? "" };
  }
}

interface Node {
  name: string;
  configDir: string;
  runFolder: string;
  agent: ChildProcess | null;
}

function startAgent(n: Node): void {
  mkdirSync(n.runFolder, { recursive: true });
  const out = openSync(join(n.runFolder, "agent.out"), "a");
  n.agent = spawn(agentBin, ["start", CLUSTER, "--config-dir", n.configDir], {
    env: {
      ...process.env,
      EFM_LOCK_DIR: n.runFolder,
      EFM_LOG_DIR: n.runFolder,
      EFM_RUN_DIR: n.runFolder,
      EFM_STATE_DIR: n.runFolder,
    },
    stdio: ["ignore", out, out],
    detached: keep,
  });
  if (keep) n.agent.unref();
}

type JsonStatus = { nodes: Record<string, { type: string; agent: string; db: string }> };

function statusJson(n: Node): JsonStatus | null {
  const r = efm(n.configDir, n.runFolder, ["cluster-status-json", CLUSTER]);
  try {
    return JSON.parse(r.out) as JsonStatus;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  let cluster: Cluster | null = null;
  const nodes: Node[] = [];
  const mail = await startMailSink();
  const cleanup = async () => {
    for (const n of nodes) n.agent?.kill("SIGTERM");
    await sleep(1500);
    for (const n of nodes) n.agent?.kill("SIGKILL");
    await mail.close();
    await downCluster(join(runDir, "lab"));
  };
  process.on("SIGINT", () => {
    void cleanup().then(() => process.exit(130));
  });

  try {
    // A new cluster: the agents' saved state of an earlier run (voters, last master, a fenced
    // node's rebuild flag) describes databases that no longer exist.
    await downCluster(join(runDir, "lab"));
    rmSync(join(runDir, "agents"), { recursive: true, force: true });
    say("Building a 3-host PostgreSQL 15 cluster on 127.0.10.11-13 (a master and two streaming standbys)");
    cluster = await createCluster({
      name: "efmdemo",
      mode: "loopback",
      addressBase: "127.0.10",
      firstOctet: 11,
      port: 15444,
      runDir: join(runDir, "lab"),
      hosts: [
        { name: "db1", role: "master" },
        { name: "db2", role: "standby" },
        { name: "db3", role: "standby" },
      ],
      // The old master of a switchover follows the new one as db.user: it needs replication.
      hbaLines: ["host replication efm 0.0.0.0/0 scram-sha-256"],
      log: (l) => process.stdout.write(`   ${l}\n`),
    });
    // db.user streams as a switched-over master's replication user and may CHECKPOINT
    // (docs/operations.md, "Switchover").
    await cluster.psql("db1", "ALTER ROLE efm REPLICATION; GRANT pg_checkpoint TO efm;");
    const files = cluster.writeEfmFiles(CLUSTER, {
      passwordEncrypted: encrypt(cluster.efmPassword, CLUSTER),
      agentPort: 17800,
      adminPort: 17809,
      nodes: "others",
      properties: {
        "user.email": "dba@example.com",
        "notification.smtp.host": "127.0.0.1",
        "notification.smtp.port": String(mail.port),
        // Fast settings so the demo takes seconds, not minutes; the defaults suit production.
        "local.period": "1",
        "local.timeout": "5",
        "local.timeout.final": "2",
        "remote.timeout": "3",
        "jgroups.timeout": "500",
        "jgroups.max.tries": "4",
        pingServerIp: "127.0.0.1",
      },
    });
    for (const name of hostNames) {
      const f = files[name];
      if (!f) throw new Error(`no files for ${name}`);
      nodes.push({ name, configDir: f.dir, runFolder: join(runDir, "agents", name), agent: null });
      // The demo turns on each agent's HTTP endpoints and status page (off by default).
      appendFileSync(f.propertiesFile, `http.bind.address=${cluster.host(name).address}:${HTTP_PORT}\n`);
    }
    const [n1] = nodes as [Node, Node, Node];

    say(`Starting one agent per host (bin/efm-agent start ${CLUSTER})`);
    for (const n of nodes) startAgent(n);
    // Ready when every agent has finished its start-up checks (node-status-json exits 0).
    for (let i = 0; i < 60; i++) {
      await sleep(1000);
      if (nodes.every((n) => efm(n.configDir, n.runFolder, ["node-status-json", CLUSTER]).status === 0))
        break;
    }
    say(`bin/efm cluster-status ${CLUSTER}`);
    process.stdout.write(efm(n1.configDir, n1.runFolder, ["cluster-status", CLUSTER]).out);
    say(
      `Live status page: http://${cluster.host("db2").address}:${HTTP_PORT}/ (any host; /primary and /metrics on the same port)`,
    );

    const watch = async (watcher: Node, killed: string): Promise<string> => {
      let last = "";
      let master = "";
      for (let i = 0; i < 90 && !master; i++) {
        await sleep(1000);
        const s = statusJson(watcher);
        if (!s) continue;
        const line = Object.entries(s.nodes)
          .map(([a, n]) => `${a} ${n.type}/${n.db}`)
          .join("   ");
        if (line !== last) {
          process.stdout.write(`   ${new Date().toISOString().slice(11, 19)}  ${line}\n`);
          last = line;
        }
        const killedAddress = cluster?.host(killed).address;
        const up = Object.entries(s.nodes).filter(
          ([a, n]) => n.type === "Master" && n.db === "UP" && a !== killedAddress,
        );
        if (up.length === 1) master = hostNames.find((h) => cluster?.host(h).address === up[0]?.[0]) ?? "";
      }
      if (!master) throw new Error(`no new master after ${killed}'s database was killed`);
      await sleep(2000);
      say(`bin/efm cluster-status ${CLUSTER} after the failover`);
      process.stdout.write(efm(watcher.configDir, watcher.runFolder, ["cluster-status", CLUSTER]).out);
      process.stdout.write(
        `\n   ${master} is the writable master now; rows on it: ${await cluster?.count(master)}\n`,
      );
      return master;
    };

    say("Writing 100 rows on the master, then killing its postmaster with SIGKILL");
    await cluster.write("db1", 100);
    await cluster.killDb("db1");
    say("Watching the agents (from db2's point of view)");
    const second = await watch(nodes[1]!, "db1");

    say(`Bringing db1 back as a standby of ${second} (pg_rewind, else a base backup), then efm resume`);
    process.stdout.write(`   ${await cluster.makeStandbyOf("db1", second)}\n`);
    process.stdout.write(efm(n1.configDir, n1.runFolder, ["resume", CLUSTER]).out);
    for (let i = 0; i < 60; i++) {
      await sleep(1000);
      if (statusJson(n1)?.nodes[cluster.host("db1").address]?.type === "Standby") break;
    }

    say(`A second failover: writing 50 rows on ${second}, then killing its postmaster`);
    await cluster.write(second, 50);
    await cluster.killDb(second);
    const watcher = nodes.find((n) => n.name !== second) as Node;
    say(`Watching the agents (from ${watcher.name}'s point of view)`);
    const third = await watch(watcher, second);

    // The original master back in its role, on purpose this time: a switchover loses no write.
    const db1 = cluster.host("db1").address;
    for (let i = 0; i < 60; i++) {
      const s = statusJson(n1);
      if (s?.nodes[db1]?.type === "Standby" && s.nodes[cluster.host(third).address]?.type === "Master") break;
      await sleep(1000);
    }
    say(`Switchover back to db1: bin/efm promote ${CLUSTER} -switchover -sourcenode ${db1}`);
    await cluster.write(third, 25);
    const before = await cluster.count(third);
    const so = efm(n1.configDir, n1.runFolder, ["promote", CLUSTER, "-switchover", "-sourcenode", db1]);
    process.stdout.write(so.out);
    if (so.status !== 0) throw new Error(`the switchover back to db1 failed (exit ${so.status})`);
    for (let i = 0; i < 60; i++) {
      if (statusJson(n1)?.nodes[cluster.host(third).address]?.type === "Standby") break;
      await sleep(1000);
    }
    say(`bin/efm cluster-status ${CLUSTER} after the switchover`);
    process.stdout.write(efm(n1.configDir, n1.runFolder, ["cluster-status", CLUSTER]).out);
    process.stdout.write(
      `\n   db1 is the master again with all ${await cluster.count("db1")} rows (${before} on ${third} before); ${third} follows it as a standby without efm resume\n`,
    );

    if (keep) {
      say("Left running (--keep)");
      process.stdout.write(
        [
          `   page:     http://${cluster.host("db2").address}:${HTTP_PORT}/   (/primary, /replica, /metrics, /status)`,
          `   status:   EFM_RUN_DIR=${n1.runFolder} ${efmBin} --config-dir ${n1.configDir} cluster-status ${CLUSTER}`,
          `   logs:     ${join(runDir, "agents")}/<host>/${CLUSTER}.log`,
          `   stop all: EFM_RUN_DIR=${watcher.runFolder} ${efmBin} --config-dir ${watcher.configDir} stop-cluster ${CLUSTER}`,
          `   then:     node ${join(repo, "tooling/lab/dist/cli.js")} down --run-dir ${join(runDir, "lab")}`,
          "",
        ].join("\n"),
      );
      await mail.close();
      return;
    }
    say("Stopping the cluster (bin/efm stop-cluster) and removing everything");
    process.stdout.write(efm(watcher.configDir, watcher.runFolder, ["stop-cluster", CLUSTER]).out);
    await sleep(2000);
  } finally {
    if (!keep) await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
