import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { formatProblem } from "./errors.ts";
import { parseJavaProperties } from "./java-properties.ts";
import { clusterNameFromPath, parseConfig, printConfig } from "./parse.ts";
import {
  type EfmConfig,
  LOG_LEVELS,
  NOTIFICATION_LEVELS,
  netmaskToPrefix,
  prefixToNetmask,
} from "./schema.ts";

const VALID = `# a master node
db.user=efm
db.password.encrypted=v1:00ff
db.port=5444
db.database=edb
db.service.owner=postgres
db.recovery.conf.dir=/var/lib/pgsql/data
db.bin=/usr/lib/postgresql/15/bin
admin.port=7809
bind.address=10.0.1.8:7800
is.witness=false
user.email=dba@example.com
`;

function parse(text: string) {
  return parseConfig(text, "/etc/efm/acctg.properties");
}

describe("java properties syntax", () => {
  test("comments, separators, continuations and escapes", () => {
    const { entries, problems } = parseJavaProperties(
      [
        "# comment",
        "! also a comment",
        "  a = 1  ",
        "b:2",
        "c 3",
        "d\t=\t four \\",
        "     five",
        "e=tab\\there\\nnewline \\u0041\\\\",
        "f=",
        "g",
        "key\\ with\\=sep = v",
        "h=ends with backslash \\\\",
        "i=after",
      ].join("\r\n"),
      "x",
    );
    expect(problems).toEqual([]);
    expect(Object.fromEntries(entries.map((e) => [e.key, e.value]))).toEqual({
      a: "1",
      b: "2",
      c: "3",
      d: "four five",
      e: "tab\there\nnewline A\\",
      f: "",
      g: "",
      "key with=sep": "v",
      h: "ends with backslash \\",
      i: "after",
    });
    expect(entries.find((e) => e.key === "i")?.line).toBe(13);
  });

  test("a malformed unicode escape is a syntax error with its line", () => {
    const { problems } = parseJavaProperties("a=1\nb=\\u12x4\n", "f.properties");
    expect(problems).toMatchObject([{ code: "SYNTAX", line: 2 }]);
  });
});

describe("parseConfig", () => {
  test("a complete file yields a typed config with the guide's defaults", () => {
    const r = parse(VALID);
    expect(r.errors).toEqual([]);
    expect(r.config).toMatchObject({
      autoFailover: true,
      autoReconfigure: true,
      // Rejoin (issue 16): off unless asked for, the guide's behaviour.
      autoRejoin: false,
      dbRewind: "off",
      dbRejoinBasebackup: false,
      dbPort: 5444,
      dbReuseConnectionCount: 0,
      jdbcSsl: false,
      localPeriod: 10,
      localTimeout: 60,
      localTimeoutFinal: 10,
      remoteTimeout: 10,
      jgroupsMaxTries: 8,
      jgroupsTimeout: 5000,
      bindAddress: { host: "10.0.1.8", port: 7800 },
      userEmail: ["dba@example.com"],
      pingServerIp: "8.8.8.8",
      pingServerCommand: ["/bin/ping", "-q", "-c3", "-w5"],
      efmLoglevel: "INFO",
      notificationSmtpHost: "localhost",
      notificationSmtpPort: 25,
    });
    expect(r.config?.virtualIp).toBeUndefined();
  });

  test("quoted value, bad port and missing db.user are all reported with their lines", () => {
    const text = VALID.replace("db.user=efm", "db.user=")
      .replace("db.port=5444", "db.port=70000")
      .replace("db.database=edb", "db.database='edb'");
    const r = parse(text);
    expect(r.config).toBeNull();
    const summary = r.errors.map((e) => [e.code, e.property, e.line]);
    expect(summary).toEqual(
      expect.arrayContaining([
        ["MISSING_PROPERTY", "db.user", 2],
        ["INVALID_VALUE", "db.port", 4],
        ["QUOTED_VALUE", "db.database", 5],
      ]),
    );
    expect(formatProblem(r.errors.find((e) => e.property === "db.port")!)).toBe(
      "/etc/efm/acctg.properties:4: db.port=70000: expected a port number from 1 to 65535",
    );
  });

  test("missing properties are named even when absent from the file", () => {
    const r = parse("is.witness=false\n");
    const missing = r.errors.filter((e) => e.code === "MISSING_PROPERTY").map((e) => e.property);
    expect(missing).toEqual(
      expect.arrayContaining([
        "db.user",
        "db.service.owner",
        "db.bin",
        "bind.address",
        "admin.port",
        "user.email",
      ]),
    );
  });

  test("a witness needs no local database settings", () => {
    const text = VALID.split("\n")
      .filter((l) => !/^db\.(service|recovery|bin)/.test(l))
      .join("\n")
      .replace("is.witness=false", "is.witness=true");
    const r = parse(text);
    expect(r.errors).toEqual([]);
    expect(r.config?.isWitness).toBe(true);
    const r2 = parse(text.replace("is.witness=true", "is.witness=false"));
    expect(r2.errors.map((e) => e.property).sort()).toEqual([
      "db.bin",
      "db.recovery.conf.dir",
      "db.service.owner",
    ]);
  });

  test("booleans are exactly true or false; log levels from the guide's list", () => {
    const r = parse(`${VALID}auto.failover=yes\njdbc.ssl=TRUE\nefm.loglevel=DEBUG\n`);
    expect(r.errors.map((e) => e.property)).toEqual(["auto.failover", "jdbc.ssl", "efm.loglevel"]);
    expect(r.errors[2]?.message).toContain("FINEST, FINER, FINE, CONFIG, INFO, WARNING, SEVERE");
  });

  test("bind.address must be host:port", () => {
    for (const bad of ["10.0.1.8", "10.0.1.8:", "10.0.1.8:0", ":7800", "bad host:7800", "10.0.1.8:7800:1"]) {
      const r = parse(VALID.replace("bind.address=10.0.1.8:7800", `bind.address=${bad}`));
      expect(
        r.errors.map((e) => e.property),
        bad,
      ).toEqual(["bind.address"]);
    }
    expect(parse(VALID.replace("10.0.1.8:7800", "db1.example.com:7800")).config?.bindAddress.host).toBe(
      "db1.example.com",
    );
    expect(parse(VALID.replace("10.0.1.8:7800", "[fd00::8]:7800")).config?.bindAddress).toEqual({
      host: "fd00::8",
      port: 7800,
    });
  });

  test("virtual IP: all three or none, netmask contiguous", () => {
    const vip = "virtualIp=10.0.1.20\nvirtualIp.interface=eth0:1\nvirtualIp.netmask=255.255.255.0\n";
    expect(parse(VALID + vip).config?.virtualIp).toEqual({
      address: "10.0.1.20",
      interface: "eth0:1",
      prefix: 24,
    });
    const partial = parse(`${VALID}virtualIp=10.0.1.20\nvirtualIp.interface=\n`);
    expect(partial.errors).toMatchObject([{ code: "INCONSISTENT_PROPERTIES", property: "virtualIp" }]);
    const badMask = parse(VALID + vip.replace("255.255.255.0", "255.255.0.255"));
    expect(badMask.errors).toMatchObject([
      { code: "INVALID_VALUE", property: "virtualIp.netmask", line: 15 },
    ]);
    // Later EFM spellings.
    const later = parse(`${VALID}virtual.ip=10.0.1.20\nvirtual.ip.interface=eth0\nvirtual.ip.prefix=16\n`);
    expect(later.config?.virtualIp).toEqual({ address: "10.0.1.20", interface: "eth0", prefix: 16 });
  });

  test("later EFM spellings are aliases", () => {
    const r = parse(
      `${VALID}ping.server.ip=10.0.0.1\nping.server.command=/usr/bin/ping -c1\nscript.primary.isolated=/usr/local/bin/iso.sh\n`,
    );
    expect(r.errors).toEqual([]);
    expect(r.config).toMatchObject({
      pingServerIp: "10.0.0.1",
      pingServerCommand: ["/usr/bin/ping", "-c1"],
      scriptMasterIsolated: "/usr/local/bin/iso.sh",
    });
    expect(r.warnings).toEqual([]);
  });

  test("unknown keys warn with a suggestion; replaced keys are errors; the licence is ignored", () => {
    const r = parse(`${VALID}auto.failvoer=true\ncluster.name=acctg\nagents=1.2.3.4\nefm.license=ABCD\n`);
    expect(r.warnings).toMatchObject([
      {
        code: "UNKNOWN_PROPERTY",
        property: "auto.failvoer",
        message: "unknown property; did you mean auto.failover?",
      },
      { code: "IGNORED_PROPERTY", property: "efm.license" },
    ]);
    expect(r.errors.map((e) => [e.code, e.property])).toEqual([
      ["REPLACED_PROPERTY", "cluster.name"],
      ["REPLACED_PROPERTY", "agents"],
    ]);
    expect(r.errors[1]?.message).toContain("bind.address");
  });

  test("user.email takes several recipients separated by commas, semicolons or blanks", () => {
    const r = parse(
      VALID.replace("user.email=dba@example.com", "user.email=a@x.org, b@y.org;c@z.org  d@w.org"),
    );
    expect(r.config?.userEmail).toEqual(["a@x.org", "b@y.org", "c@z.org", "d@w.org"]);
    expect(r.config?.notificationLevel).toBe("INFO");
    const bad = parse(VALID.replace("user.email=dba@example.com", "user.email=a@x.org, not-an-address"));
    expect(bad.errors).toMatchObject([{ property: "user.email", line: 12 }]);
  });

  test("script paths must be absolute", () => {
    const r = parse(`${VALID}script.fence=fence.sh\n`);
    expect(r.errors).toMatchObject([{ property: "script.fence", value: "fence.sh", line: 13 }]);
  });

  test("rejoin properties: off by default, checked values, each error on its line", () => {
    const on = parse(
      `${VALID}auto.rejoin=true\ndb.rewind=on\ndb.rewind.source.user=rewinder\ndb.rejoin.basebackup=true\n`,
    );
    expect(on.errors).toEqual([]);
    expect(on.config).toMatchObject({
      autoRejoin: true,
      dbRewind: "on",
      dbRewindSourceUser: "rewinder",
      dbRejoinBasebackup: true,
    });
    expect(parseConfig(printConfig(on.config!), "/etc/efm/acctg.properties").config).toEqual(on.config);
    const bad = parse(
      `${VALID}auto.rejoin=yes\ndb.rewind=true\ndb.rewind.source.user=rewind er\ndb.rejoin.basebackup=1\n`,
    );
    expect(bad.config).toBeNull();
    expect(bad.errors.map((e) => [e.code, e.property, e.line])).toEqual([
      ["INVALID_VALUE", "auto.rejoin", 13],
      ["INVALID_VALUE", "db.rewind", 14],
      ["INVALID_VALUE", "db.rewind.source.user", 15],
      ["INVALID_VALUE", "db.rejoin.basebackup", 16],
    ]);
    expect(formatProblem(bad.errors[1]!)).toBe(
      "/etc/efm/acctg.properties:14: db.rewind=true: expected off or on",
    );
  });

  test("synchronous.mode is off unless set; on and strict are read; anything else names the property and file", () => {
    expect(parse(VALID).config?.synchronousMode).toBe("off");
    expect(parse(`${VALID}synchronous.mode=on\n`).config?.synchronousMode).toBe("on");
    expect(parse(`${VALID}synchronous.mode=strict\n`).config?.synchronousMode).toBe("strict");
    const bad = parse(`${VALID}synchronous.mode=yes\n`);
    expect(bad.config).toBeNull();
    expect(bad.errors.map((e) => [e.code, e.property, e.line])).toEqual([
      ["INVALID_VALUE", "synchronous.mode", 13],
    ]);
    expect(formatProblem(bad.errors[0]!)).toBe(
      "/etc/efm/acctg.properties:13: synchronous.mode=yes: expected off, on, strict",
    );
  });

  test("admin.port must differ from the binding port", () => {
    const r = parse(VALID.replace("admin.port=7809", "admin.port=7800"));
    expect(r.errors).toMatchObject([{ code: "INCONSISTENT_PROPERTIES", property: "admin.port" }]);
  });

  test("http.bind.address is off unless set, host:port when set, and needs a port of its own", () => {
    expect(parse(VALID).config?.httpBindAddress).toBeUndefined();
    expect(parse(`${VALID}http.bind.address=\n`).config?.httpBindAddress).toBeUndefined();
    const on = parse(`${VALID}http.bind.address=0.0.0.0:8008\n`);
    expect(on.errors).toEqual([]);
    expect(on.config?.httpBindAddress).toEqual({ host: "0.0.0.0", port: 8008 });
    expect(parseConfig(printConfig(on.config!), "/etc/efm/acctg.properties").config).toEqual(on.config);
    expect(parse(`${VALID}http.bind.address=8008\n`).errors).toMatchObject([
      { code: "INVALID_VALUE", property: "http.bind.address", line: 13 },
    ]);
    for (const taken of ["7809", "7800"]) {
      const r = parse(`${VALID}http.bind.address=10.0.1.8:${taken}\n`);
      expect(r.errors).toMatchObject([
        { code: "INCONSISTENT_PROPERTIES", property: "http.bind.address", line: 13 },
      ]);
      expect(formatProblem(r.errors[0]!)).toContain(taken === "7809" ? "admin.port" : "bind.address");
    }
  });

  test("cluster name is the file's base name", () => {
    expect(clusterNameFromPath("/etc/efm/acctg.properties")).toBe("acctg");
    expect(clusterNameFromPath("efm.properties")).toBe("efm");
  });

  test("netmask and prefix convert both ways", () => {
    for (let p = 0; p <= 32; p++) expect(netmaskToPrefix(prefixToNetmask(p))).toBe(p);
    expect(netmaskToPrefix("255.255.0.255")).toBeNull();
    expect(netmaskToPrefix("255.0.255.0")).toBeNull();
    expect(netmaskToPrefix("300.0.0.0")).toBeNull();
  });
});

const word = fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/);
const anyText = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim() === s && !/^["']/.test(s));
const absPath = word.map((w) => `/opt/${w}`);
const configArb: fc.Arbitrary<EfmConfig> = fc.record(
  {
    autoFailover: fc.boolean(),
    autoReconfigure: fc.boolean(),
    autoRejoin: fc.boolean(),
    dbRewind: fc.constantFrom("off" as const, "on" as const),
    dbRewindSourceUser: fc.constantFrom("efm", "rewinder", "pg_rewind.user"),
    dbRejoinBasebackup: fc.boolean(),
    dbUser: anyText,
    dbPasswordEncrypted: anyText,
    dbPort: fc.integer({ min: 1, max: 65535 }),
    dbDatabase: anyText,
    dbReuseConnectionCount: fc.nat({ max: 1000 }),
    jdbcSsl: fc.boolean(),
    // Modes that never conflict with jdbc.ssl=true; the conflict has its own test (tls.test.ts).
    jdbcSslmode: fc.constantFrom("require" as const, "verify-ca" as const, "verify-full" as const),
    jdbcSslrootcert: absPath,
    jdbcSslcert: absPath,
    jdbcSslkey: absPath,
    adminPort: fc.integer({ min: 1, max: 30000 }),
    localPeriod: fc.integer({ min: 1, max: 100 }),
    localTimeout: fc.integer({ min: 100, max: 200 }),
    localTimeoutFinal: fc.integer({ min: 1, max: 100 }),
    remoteTimeout: fc.integer({ min: 1, max: 100 }),
    jgroupsMaxTries: fc.integer({ min: 2, max: 100 }),
    jgroupsTimeout: fc.integer({ min: 50, max: 100000 }),
    userEmail: fc.array(
      word.map((w) => `${w}@example.com`),
      { minLength: 1, maxLength: 3 },
    ),
    bindAddress: fc.record({ host: fc.ipV4(), port: fc.integer({ min: 30001, max: 65535 }) }),
    isWitness: fc.constant(false),
    dbServiceOwner: word,
    dbRecoveryConfDir: absPath,
    dbBin: absPath,
    dbDataDir: absPath,
    virtualIp: fc.record({
      address: fc.ipV4(),
      interface: fc.constantFrom("eth0:1", "ens3"),
      prefix: fc.integer({ min: 0, max: 32 }),
    }),
    pingServerIp: fc.ipV4(),
    pingServerCommand: fc.array(word, { maxLength: 3 }).map((a) => ["/bin/ping", ...a]),
    scriptFence: absPath,
    scriptPostPromotion: absPath,
    scriptDbFailure: absPath,
    scriptMasterIsolated: absPath,
    scriptNotification: absPath,
    scriptTimeout: fc.integer({ min: 1, max: 600 }),
    jgroupsLoglevel: fc.constantFrom(...LOG_LEVELS),
    efmLoglevel: fc.constantFrom(...LOG_LEVELS),
    notificationSmtpHost: fc.constantFrom("localhost", "mail.example.com", "10.1.2.3"),
    notificationSmtpPort: fc.integer({ min: 1, max: 65535 }),
    fromEmail: word.map((w) => `${w}@example.org`),
    notificationLevel: fc.constantFrom(...NOTIFICATION_LEVELS),
    notificationTextPrefix: anyText,
    watchdogMode: fc.constantFrom("off" as const, "automatic" as const, "required" as const),
    watchdogDevice: absPath,
    watchdogSafetyMargin: fc.nat({ max: 60_000 }),
    synchronousMode: fc.constantFrom("off" as const, "on" as const, "strict" as const),
    switchoverMaxLagBytes: fc.nat({ max: 1024 ** 4 }),
    lockDir: absPath,
    logDir: absPath,
    runDir: absPath,
    stateDir: absPath,
  },
  {
    requiredKeys: [
      "autoFailover",
      "autoReconfigure",
      "autoRejoin",
      "dbRewind",
      "dbRejoinBasebackup",
      "dbUser",
      "dbPasswordEncrypted",
      "dbPort",
      "dbDatabase",
      "dbReuseConnectionCount",
      "jdbcSsl",
      "adminPort",
      "localPeriod",
      "localTimeout",
      "localTimeoutFinal",
      "remoteTimeout",
      "jgroupsMaxTries",
      "jgroupsTimeout",
      "userEmail",
      "bindAddress",
      "isWitness",
      "dbServiceOwner",
      "dbRecoveryConfDir",
      "dbBin",
      "pingServerIp",
      "pingServerCommand",
      "scriptTimeout",
      "jgroupsLoglevel",
      "efmLoglevel",
      "notificationSmtpHost",
      "notificationSmtpPort",
      "notificationLevel",
      "watchdogMode",
      "watchdogDevice",
      "watchdogSafetyMargin",
      "synchronousMode",
      "switchoverMaxLagBytes",
    ],
  },
);

describe("properties (fast-check)", () => {
  test("parse(print(config)) equals config", () => {
    fc.assert(
      fc.property(configArb, (config) => {
        const r = parse(printConfig(config));
        expect(r.errors).toEqual([]);
        expect(r.config).toEqual(config);
      }),
      { numRuns: 300 },
    );
  });

  test("random input never throws: it yields a config or problems with lines", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 400 }), (text) => {
        const r = parse(text);
        expect(r.config === null).toBe(r.errors.length > 0);
        for (const p of [...r.errors, ...r.warnings]) expect(p.file).toBe("/etc/efm/acctg.properties");
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const r = parse(Buffer.from(bytes).toString("utf8"));
        expect(r.errors.length).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });
});
