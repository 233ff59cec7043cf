/**
 * Guide 8.6 and 3.3 on real hosts: three network namespaces on a bridge, a virtual IP, and
 * the master cut off from everyone with iptables. The majority promotes a standby and moves
 * the VIP; the isolated master releases the VIP, fences (stops) its database and runs
 * script.master.isolated. After healing, the old master rejoins as Idle.
 */
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Cluster, createCluster, downCluster } from "@efm/lab";
import { encrypt } from "@efm/password-crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AGENT_BIN, EFM_BIN, FAST, type StatusJson, waitUntil } from "./harness.ts";

const RUN = "/tmp/efm-e2e-netns";
const NAME = "acctg";
const VIP = "10.201.4.200";
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)("minority isolation with a virtual IP (network namespaces)", () => {
  let lab: Cluster;
  const agents = new Map<string, import("node:child_process").ChildProcess>();
  const dirs: Record<string, string> = {};
  const agentDir = (h: string) => join(RUN, "agents", h);
  const env = (h: string): NodeJS.ProcessEnv => ({
    ...process.env,
    EFM_LOCK_DIR: agentDir(h),
    EFM_LOG_DIR: agentDir(h),
    EFM_RUN_DIR: agentDir(h),
    EFM_STATE_DIR: agentDir(h),
    EFM_LOG_STDOUT: "1",
  });

  async function status(from: string): Promise<StatusJson | null> {
    const r = await lab.exec(
      from,
      [process.execPath, EFM_BIN, "--config-dir", dirs[from] ?? "", "cluster-status-json", NAME],
      {
        env: env(from),
        timeoutMs: 30_000,
      },
    );
    try {
      return JSON.parse(r.stdout) as StatusJson;
    } catch {
      return null;
    }
  }

  const typeOf = (s: StatusJson | null, h: string) => s?.nodes[lab.host(h).address]?.type;
  /** Past its start-up checks: an agent still checking shows as a Standby with `starting`. */
  const started = (s: StatusJson | null, h: string) => {
    const n = s?.nodes[lab.host(h).address] as { starting?: boolean } | undefined;
    return n !== undefined && n.starting !== true;
  };
  const vipHeldBy = async (h: string) =>
    (await lab.exec(h, ["ip", "-o", "addr", "show"])).stdout.includes(`inet ${VIP}/`);
  const logs = () =>
    ["a", "b", "c"]
      .map((h) => {
        const f = join(agentDir(h), "agent.out");
        return `== ${h}\n${existsSync(f) ? readFileSync(f, "utf8").split("\n").slice(-30).join("\n") : "(none)"}`;
      })
      .join("\n");

  beforeAll(async () => {
    await downCluster(join(RUN, "lab"));
    // Start from nothing: an earlier run's agent state (a fenced-master mark) or marker file
    // would change what the agents do and let the script check pass without a script run.
    rmSync(RUN, { recursive: true, force: true });
    lab = await createCluster({
      name: "e2enetns",
      mode: "netns",
      subnet: "10.201.4.0/24",
      prefix: "ee4",
      port: 15409,
      runDir: join(RUN, "lab"),
      hosts: [
        { name: "a", role: "master" },
        { name: "b", role: "standby" },
        { name: "c", role: "standby" },
      ],
    });
    const marker = join(RUN, "isolated-marker");
    const script = join(RUN, "master-isolated.sh");
    mkdirSync(RUN, { recursive: true });
    writeFileSync(script, `#!/bin/sh\necho "$EFM_EVENT $EFM_NODE" >> ${marker}\n`);
    chmodSync(script, 0o755);
    const files = lab.writeEfmFiles(NAME, {
      passwordEncrypted: encrypt(lab.efmPassword, NAME),
      agentPort: 7800,
      adminPort: 7809,
      nodes: "all",
      properties: {
        ...FAST,
        pingServerIp: lab.bridgeAddress ?? "",
        virtualIp: VIP,
        "virtualIp.interface": "eth0:1",
        "virtualIp.netmask": "255.255.255.0",
        "script.master.isolated": script,
        // No mail server in the namespaces: every notification still reaches the cluster log.
        "notification.smtp.port": "1",
      },
    });
    for (const h of ["a", "b", "c"]) {
      dirs[h] = files[h]?.dir ?? "";
      mkdirSync(agentDir(h), { recursive: true });
      const out = join(agentDir(h), "agent.out");
      const fd = openSync(out, "a");
      agents.set(
        h,
        lab.spawn(h, [process.execPath, AGENT_BIN, "start", NAME, "--config-dir", dirs[h] ?? ""], {
          env: env(h),
          stdio: ["ignore", fd, fd],
        }),
      );
    }
  });

  afterAll(async () => {
    for (const a of agents.values()) a.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    await lab?.down();
  });

  test("the master holds the VIP; isolated, it fences itself while the majority promotes and takes the VIP", async () => {
    const healthy = await waitUntil(
      async () => {
        const s = await status("b");
        // Every agent past its start-up checks: a standby still checking the master's database
        // when the master is cut off exits by guide 4.1.1, and nobody is left to promote.
        return (
          typeOf(s, "a") === "Master" &&
          typeOf(s, "b") === "Standby" &&
          typeOf(s, "c") === "Standby" &&
          ["a", "b", "c"].every((h) => started(s, h))
        );
      },
      60_000,
      1000,
    );
    expect(healthy, logs()).toBe(true);
    expect(await waitUntil(() => vipHeldBy("a"), 20_000, 500), logs()).toBe(true);
    expect(await lab.reachable("b", VIP)).toBe(true);

    await lab.isolate("a");
    const promoted = await waitUntil(
      async () => {
        const s = await status("b");
        const m = ["b", "c"].filter((h) => typeOf(s, h) === "Master");
        return m.length === 1 ? m[0] : undefined;
      },
      90_000,
      1000,
    );
    expect(promoted, logs()).toBeDefined();
    const newMaster = promoted as string;
    expect(await lab.inRecovery(newMaster)).toBe(false);
    // The VIP moved: held by the new master, not by the isolated old one, and reachable.
    expect(await waitUntil(() => vipHeldBy(newMaster), 30_000, 500), logs()).toBe(true);
    expect(await waitUntil(async () => !(await vipHeldBy("a")), 30_000, 500), logs()).toBe(true);
    const other = newMaster === "b" ? "c" : "b";
    expect(await lab.reachable(other, VIP)).toBe(true);

    // The isolated master fenced itself: recovery settings written, script run, no longer Master.
    const aData = lab.host("a").dataDir ?? "";
    expect(await waitUntil(() => existsSync(join(aData, "standby.signal")), 30_000, 500), logs()).toBe(true);
    expect(await waitUntil(() => existsSync(join(RUN, "isolated-marker")), 30_000, 500), logs()).toBe(true);
    expect(readFileSync(join(RUN, "isolated-marker"), "utf8")).toContain("master.isolated");
    // ... and stopped its database (issue 13: a fenced master is down, not merely read-only).
    expect(await waitUntil(() => !lab.isRunning("a"), 60_000, 500), logs()).toBe(true);
    await expect(lab.inRecovery("a")).rejects.toThrow();
    const selfView = await status("a");
    expect(typeOf(selfView, "a")).not.toBe("Master");

    // Heal: the old master comes back into the one cluster, as Idle; still one master.
    await lab.heal();
    let seen: unknown = null;
    const rejoined = await waitUntil(
      async () => {
        const s = await status(other);
        seen = s;
        const masters = Object.values(s?.nodes ?? {}).filter((n) => n.type === "Master");
        return (
          s?.nodes[lab.host("a").address]?.agent === "UP" &&
          masters.length === 1 &&
          typeOf(s, newMaster) === "Master"
        );
      },
      60_000,
      1000,
    );
    expect(rejoined, `${logs()}\n== last cluster-status-json from ${other}\n${JSON.stringify(seen)}`).toBe(
      true,
    );
    expect(typeOf(await status(other), "a")).toBe("Idle");
  });
});
