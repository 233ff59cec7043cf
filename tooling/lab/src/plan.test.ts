import { describe, expect, it } from "vitest";
import { planCluster } from "./cluster.ts";
import { efmProperties } from "./efm-files.ts";
import { LabError } from "./errors.ts";
import { parseSubnet, subnetAddress } from "./net.ts";

const hosts = [
  { name: "a", role: "master" as const },
  { name: "b", role: "standby" as const },
  { name: "w", role: "witness" as const },
];

describe("planCluster (no side effects)", () => {
  it("derives loopback addresses, folders and a state record", () => {
    const s = planCluster({
      name: "p1",
      hosts,
      port: 15999,
      addressBase: "127.0.9",
      runDir: "/tmp/efm-lab-plan",
    });
    expect(s.hosts.map((h) => h.address)).toEqual(["127.0.9.11", "127.0.9.12", "127.0.9.13"]);
    expect(s.hosts[0]?.dataDir).toBe("/tmp/efm-lab-plan/a/data");
    expect(s.hosts[2]?.dataDir).toBeNull();
    expect(s.hosts.every((h) => h.namespace === null)).toBe(true);
    expect(s.runDir).toBe("/tmp/efm-lab-plan");
  });

  it("rejects bad options with INVALID_OPTIONS naming the problem", () => {
    const bad = (o: Partial<Parameters<typeof planCluster>[0]>, re: RegExp) => {
      let err: unknown;
      try {
        planCluster({ name: "p", hosts, ...o });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LabError);
      expect((err as LabError).code).toBe("INVALID_OPTIONS");
      expect((err as LabError).message).toMatch(re);
    };
    bad({ name: "has space" }, /cluster name/);
    bad({ hosts: [] }, /at least one host/);
    bad({ hosts: [hosts[0]!, hosts[0]!] }, /listed twice/);
    bad({ hosts: [hosts[1]!] }, /exactly one master/);
    bad({ hosts: [{ name: "x", role: "boss" as never }] }, /role/);
    bad({ port: 80 }, /port/);
    bad({ addressBase: "10.0.0" }, /loopback address/);
    bad({ runDir: "/" }, /refusing/);
    bad(
      {
        hosts: [
          { name: "a", role: "master", address: "127.0.0.5" },
          { name: "b", role: "standby", address: "127.0.0.5" },
        ],
      },
      /share an address/,
    );
  });

  it("parses subnets strictly", () => {
    const s = parseSubnet("10.201.1.128/25");
    expect(subnetAddress(s, 1)).toBe("10.201.1.129");
    expect(subnetAddress(s, 11)).toBe("10.201.1.139");
    expect(() => parseSubnet("10.201.1.5/24")).toThrow(/host bits/);
    expect(() => parseSubnet("10.201.1.0")).toThrow(LabError);
    expect(() => parseSubnet("300.1.1.0/24")).toThrow(LabError);
    expect(() => subnetAddress(parseSubnet("10.0.0.0/29"), 7)).toThrow(/does not fit/);
  });
});

describe("efmProperties", () => {
  const s = planCluster({
    name: "p2",
    hosts,
    port: 15998,
    addressBase: "127.0.9",
    runDir: "/tmp/efm-lab-plan2",
  });

  it("fills every property of the guide's template from the lab", () => {
    const p = efmProperties(s, s.hosts[0]!, 0, { passwordEncrypted: "abc" });
    for (const key of [
      "db.user",
      "db.password.encrypted",
      "db.port",
      "db.database",
      "db.service.owner",
      "db.recovery.conf.dir",
      "db.bin",
      "bind.address",
      "admin.port",
      "is.witness",
      "user.email",
      "auto.failover",
      "auto.reconfigure",
      "local.period",
      "local.timeout",
      "local.timeout.final",
      "remote.timeout",
      "jgroups.timeout",
      "jgroups.max.tries",
      "pingServerIp",
      "pingServerCommand",
      "virtualIp",
      "virtualIp.interface",
      "virtualIp.netmask",
      "script.fence",
      "script.post.promotion",
      "script.db.failure",
      "script.master.isolated",
      "efm.loglevel",
      "db.data.dir",
      "db.reuse.connection.count",
      "jdbc.ssl",
    ]) {
      expect(p, key).toHaveProperty([key]);
    }
    expect(p["db.port"]).toBe("15998");
    expect(p["is.witness"]).toBe("false");
    expect(efmProperties(s, s.hosts[2]!, 2, { passwordEncrypted: "abc" })["is.witness"]).toBe("true");
    // No lab agent opens a real watchdog device unless the caller asks for one.
    expect(p["watchdog.mode"]).toBe("off");
  });

  it("lets the caller override anything, and refuses values that would break the file", () => {
    const p = efmProperties(s, s.hosts[1]!, 1, {
      passwordEncrypted: "abc",
      properties: { "local.period": "1", "custom.key": "v" },
      hostProperties: { b: { "local.period": "2" } },
    });
    expect(p["local.period"]).toBe("2");
    expect(p["custom.key"]).toBe("v");
    expect(() => efmProperties(s, s.hosts[1]!, 1, { passwordEncrypted: "a\nb" })).toThrow(LabError);
  });
});
