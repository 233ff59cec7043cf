import { describe, expect, it } from "vitest";
import { factMismatches, type PropertiesFacts, vipUnknown } from "./fact-check.ts";

const agent: PropertiesFacts = {
  propertiesFile: "/home/efm/acctg.properties",
  dataDir: "/var/lib/postgresql/15/main",
  bin: "/usr/lib/postgresql/15/bin",
  vip: { address: "10.0.1.50", interface: "eth0", prefix: 24 },
};
const root: PropertiesFacts = { ...agent, propertiesFile: "/etc/efm/acctg.properties" };

describe("factMismatches: root's properties file against the agent's own", () => {
  it("agrees when every fact is the same, whatever the file names", () => {
    expect(factMismatches(root, agent)).toEqual([]);
  });

  it("a trailing slash names the same directory", () => {
    expect(factMismatches({ ...root, dataDir: `${agent.dataDir}/`, bin: `${agent.bin}/` }, agent)).toEqual(
      [],
    );
  });

  it("names both data directories and both files", () => {
    const [m, ...rest] = factMismatches({ ...root, dataDir: "/srv/pg/other" }, agent);
    expect(rest).toEqual([]);
    expect(m).toBe(
      "the data directory (db.data.dir / db.recovery.conf.dir) differs: /var/lib/postgresql/15/main in /home/efm/acctg.properties (this agent) but /srv/pg/other in /etc/efm/acctg.properties (what the privileged helpers read)",
    );
  });

  it("names both db.bin directories", () => {
    expect(factMismatches({ ...root, bin: "/usr/lib/postgresql/14/bin" }, agent)).toEqual([
      "db.bin differs: /usr/lib/postgresql/15/bin in /home/efm/acctg.properties (this agent) but /usr/lib/postgresql/14/bin in /etc/efm/acctg.properties (what the privileged helpers read)",
    ]);
  });

  it("a VIP that differs in address, interface or prefix is named with both values", () => {
    for (const vip of [
      { address: "10.0.1.51", interface: "eth0", prefix: 24 },
      { address: "10.0.1.50", interface: "eth1", prefix: 24 },
      { address: "10.0.1.50", interface: "eth0", prefix: 32 },
    ]) {
      const [m] = factMismatches({ ...root, vip }, agent);
      expect(m).toContain("the virtual IP (virtualIp, virtualIp.interface, virtualIp.netmask) differs: ");
      expect(m).toContain("10.0.1.50/24 on eth0 in /home/efm/acctg.properties (this agent)");
      expect(m).toContain(`${vip.address}/${vip.prefix} on ${vip.interface} in /etc/efm/acctg.properties`);
    }
  });

  it("a VIP on one side only is a mismatch, either way round", () => {
    expect(factMismatches({ ...root, vip: null }, agent)[0]).toContain(
      "10.0.1.50/24 on eth0 in /home/efm/acctg.properties (this agent) but no virtualIp in /etc/efm/acctg.properties",
    );
    expect(factMismatches(root, { ...agent, vip: null })[0]).toContain(
      "no virtualIp in /home/efm/acctg.properties (this agent) but 10.0.1.50/24 on eth0 in /etc/efm/acctg.properties",
    );
  });

  it("every disagreement is reported, not only the first", () => {
    expect(factMismatches({ ...root, dataDir: "/x", bin: "/y", vip: null }, agent)).toHaveLength(3);
  });

  it("a helper that did not report its VIP is not compared on it", () => {
    const { vip: _vip, ...older } = root;
    expect(factMismatches(older, agent)).toEqual([]);
  });
});

describe("vipUnknown: the warning when root's VIP could not be learned", () => {
  it("names the agent's VIP, its file and why", () => {
    expect(vipUnknown(agent, "sudo: a password is required")).toBe(
      "could not compare the virtual IP 10.0.1.50/24 on eth0 of /home/efm/acctg.properties with the one efm-address reads from root's properties file (sudo: a password is required); efm-address assigns and releases the address named there, so make sure both files name the same virtualIp, virtualIp.interface and virtualIp.netmask",
    );
  });

  it("says nothing when the agent has no VIP", () => {
    expect(vipUnknown({ ...agent, vip: null }, "whatever")).toBeNull();
  });
});
