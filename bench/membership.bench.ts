import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createMember, deriveTiming, detectionBound, type Member } from "../packages/membership/src/index.ts";
import { afterAll, describe, it } from "vitest";

// Loopback 127.0.4.100+ on ports 17402-17404 belong to this bench (the integration test uses 17401).
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const PKG = join(ROOT, "packages", "membership");
const CLUSTER = "embbench";
const PASSWORD = "bench-password";
const procs: ChildProcess[] = [];
const live: Member[] = [];

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  await Promise.all(live.map((m) => m.stop()));
});

const addrsFor = (n: number, port: number): string[] =>
  Array.from({ length: n }, (_, i) => `127.0.4.${100 + i}:${port}`);

async function formCluster(
  n: number,
  port: number,
  timeout: number,
  maxTries: number,
): Promise<{ ms: number; members: Member[] }> {
  const addrs = addrsFor(n, port);
  const hosts = addrs.map((a) => a.split(":")[0]!);
  const members = addrs.map((a) =>
    createMember({
      bindAddress: a,
      clusterName: CLUSTER,
      dbPassword: PASSWORD,
      timeout,
      maxTries,
      seeds: addrs.filter((x) => x !== a),
      initialAllowed: hosts,
      mayFoundAlone: a === addrs[0],
    }),
  );
  live.push(...members);
  const t0 = performance.now();
  const formed = Promise.all(
    members.map(
      (m) =>
        new Promise<void>((resolve) => {
          const check = (): void => {
            const v = m.view();
            if (v && v.members.length === n && v.quorate) resolve();
          };
          m.on("viewInstalled", check);
          m.on("configCommitted", check);
        }),
    ),
  );
  await Promise.all(members.map((m) => m.start()));
  await formed;
  return { ms: performance.now() - t0, members };
}

async function stopAll(ms: Member[]): Promise<void> {
  await Promise.all(ms.map((m) => m.stop()));
  for (const m of ms) live.splice(live.indexOf(m), 1);
}

describe("membership bench", () => {
  it("time to form one view on loopback", async () => {
    for (const [timeout, maxTries] of [
      [5000, 8],
      [500, 2],
    ] as const) {
      for (const n of [3, 5, 9, 15]) {
        const { ms, members } = await formCluster(n, 17402, timeout, maxTries);
        console.log(
          `membership form: N=${n} jgroups.timeout=${timeout} -> one quorate view in ${ms.toFixed(0)} ms`,
        );
        await stopAll(members);
      }
    }
  });

  it("heartbeat CPU per member at N=15 (defaults)", async () => {
    const { members } = await formCluster(15, 17403, 5000, 8);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 20_000));
    const c = process.cpuUsage(c0);
    const secs = (performance.now() - t0) / 1000;
    const perMember = (c.user + c.system) / 1000 / 15 / secs;
    console.log(
      `membership heartbeat CPU at N=15: ${perMember.toFixed(3)} ms CPU per member per second (${(perMember / 10).toFixed(4)} % of a core)`,
    );
    await stopAll(members);
  }, 120_000);

  it("detection time of a killed member", async () => {
    execFileSync(
      process.execPath,
      [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
      { cwd: PKG },
    );
    for (const [timeout, maxTries, signal] of [
      [5000, 8, "SIGKILL"],
      [500, 2, "SIGKILL"],
      [500, 2, "SIGSTOP"],
    ] as const) {
      const addrs = addrsFor(4, 17404);
      const hosts = addrs.map((a) => a.split(":")[0]!);
      const victimAddr = addrs[3]!;
      const members: Member[] = [];
      for (const a of addrs.slice(0, 3)) {
        members.push(
          createMember({
            bindAddress: a,
            clusterName: CLUSTER,
            dbPassword: PASSWORD,
            timeout,
            maxTries,
            seeds: addrs.filter((x) => x !== a),
            initialAllowed: hosts,
            mayFoundAlone: a === addrs[0],
          }),
        );
      }
      live.push(...members);
      await Promise.all(members.map((m) => m.start()));
      const opts = {
        bindAddress: victimAddr,
        clusterName: CLUSTER,
        dbPassword: PASSWORD,
        timeout,
        maxTries,
        seeds: addrs.slice(0, 3),
        initialAllowed: hosts,
      };
      const child = spawn(process.execPath, [join(PKG, "test", "member-child.mjs"), JSON.stringify(opts)], {
        stdio: ["pipe", "ignore", "inherit"],
      });
      procs.push(child);
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if (members.every((m) => m.view()?.members.length === 4)) resolve();
        };
        for (const m of members) m.on("viewInstalled", check);
      });
      const removed = new Promise<number>((resolve) =>
        members[0]!.on("memberRemoved", (e) => {
          if (e.type === "memberRemoved" && e.member === victimAddr) resolve(performance.now());
        }),
      );
      const t0 = performance.now();
      child.kill(signal);
      const ms = (await removed) - t0;
      const bound = detectionBound(deriveTiming(timeout, maxTries));
      console.log(
        `membership detection: jgroups.timeout=${timeout} max.tries=${maxTries} ${signal === "SIGKILL" ? "process killed (TCP close)" : "process frozen (silence only)"} -> removed after ${ms.toFixed(0)} ms (silence bound ${bound} ms)`,
      );
      child.kill("SIGKILL");
      await stopAll(members);
    }
    const t = deriveTiming();
    console.log(
      `membership detection with defaults and silence only (host lost, no TCP close): computed bound ${detectionBound(t)} ms`,
    );
  }, 300_000);
});
