import { afterAll, beforeAll, describe, it } from "vitest";
import { PgChecker, remoteCheck } from "../packages/db-probe/src/index.ts";
import { type Cluster, createCluster, downCluster } from "../tooling/lab/src/index.ts";

// Reserved for this bench: loopback 127.0.2.111 on port 15412, /tmp/efm-lab-bench-dbprobe.
const runDir = "/tmp/efm-lab-bench-dbprobe";
let lab: Cluster;

beforeAll(async () => {
  lab = await createCluster({
    name: "bench-dbprobe",
    runDir,
    port: 15412,
    addressBase: "127.0.2",
    firstOctet: 111,
    hosts: [{ name: "a", role: "master" }],
  });
});

afterAll(async () => {
  await downCluster(runDir);
});

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(2);
  return `median ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${s[s.length - 1]!.toFixed(2)} ms (n=${s.length})`;
}

describe("db-probe local check round-trip", () => {
  const n = 1000;
  for (const reuseCount of [0, 100]) {
    it(`db.reuse.connection.count=${reuseCount}`, async () => {
      const checker = new PgChecker(lab.efmConnection("a"), { reuseCount });
      for (let i = 0; i < 20; i++) await checker.check(5_000); // warm-up
      const lat: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        const r = await checker.check(5_000);
        lat.push(performance.now() - t);
        if (!r.ok) throw new Error(r.failure.message);
      }
      await checker.close();
      console.log(
        `db-probe local check, reuse=${reuseCount} (scram-sha-256 login per new connection): ${stats(lat)}`,
      );
    });
  }

  it("remote check (fresh connection, remote.timeout path)", async () => {
    const lat: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t = performance.now();
      await remoteCheck(lab.efmConnection("a"), 5_000);
      lat.push(performance.now() - t);
    }
    console.log(`db-probe remote check: ${stats(lat)}`);
  });
});
