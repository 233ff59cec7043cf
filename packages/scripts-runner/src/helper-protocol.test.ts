import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isScriptsRunnerError } from "./errors.ts";
import {
  FACT_OPTIONS,
  type HelperFactArgs,
  parseHelperRequest,
  REJOIN_FACT_OPTIONS,
} from "./helper-grammar.ts";
import {
  formatRequestLine,
  LineSplitter,
  MAX_REQUEST_BYTES,
  parseRequestLine,
  requestIdOf,
} from "./helper-protocol.ts";
import { HelperClient, rejoin } from "./privileged.ts";

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return isScriptsRunnerError(e, "HELPER_USAGE") ? (e as Error).message.split("\n")[0]! : `untyped: ${e}`;
  }
  return "accepted";
};

describe("request lines", () => {
  it("splits an id and tokens", () => {
    expect(parseRequestLine("12 fence 10.0.0.2 --timeout 5")).toEqual({
      id: "12",
      tokens: ["fence", "10.0.0.2", "--timeout", "5"],
    });
    expect(formatRequestLine("3", ["check", "--role", "standby"])).toBe("3 check --role standby");
  });

  it.each([
    ["", "request line is empty"],
    ["7", "request 7 names no verb"],
    ["x check", 'request id "x" is not a number'],
    ["1234567890123 check", "is not a number of 1 to 12 digits"],
    ["1  check", "unexpected blank at column 3"],
    [" 1 check", "unexpected blank at column 1"],
    ["1 check ", "unexpected blank at column 9"],
    ["1 check\t--role", "byte 8 is"],
    ["1 fence h\u00e9", "byte 10 is"],
    ["1 fence h\r", "byte 10 is"],
    [`1 check ${"x".repeat(MAX_REQUEST_BYTES)}`, `longer than ${MAX_REQUEST_BYTES}`],
  ])("refuses %j naming what and where", (line, words) => {
    expect(refusal(() => parseRequestLine(line))).toContain(words);
  });

  it("finds the id of a bad request so its answer can name it", () => {
    expect(requestIdOf("42 frobnicate")).toBe("42");
    expect(requestIdOf("42")).toBe("42");
    expect(requestIdOf("x42 check")).toBeNull();
    expect(requestIdOf("42x check")).toBeNull();
  });

  it("never throws anything but a HELPER_USAGE error, whatever the line", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (line) => {
        try {
          parseRequestLine(line);
        } catch (e) {
          expect(isScriptsRunnerError(e, "HELPER_USAGE")).toBe(true);
        }
      }),
    );
  });
});

describe("LineSplitter", () => {
  it("cuts lines across chunks and keeps a partial one for later", () => {
    const s = new LineSplitter(100);
    expect(s.push(Buffer.from("1 ch"))).toEqual([]);
    expect(s.push(Buffer.from("eck\n2 promote\n3 fe"))).toEqual(["1 check", "2 promote"]);
    expect(s.push(Buffer.from("nce -\n\n"))).toEqual(["3 fence -", ""]);
    expect(s.push(Buffer.from("4 check"))).toEqual([]);
    expect(s.end()).toBe("4 check");
    expect(s.end()).toBeNull();
  });

  it("reports an oversized line once, drops it to its newline, and stays in step", () => {
    const s = new LineSplitter(10);
    const out = [
      ...s.push(Buffer.from("1 check\n77 ")),
      ...s.push(Buffer.from("x".repeat(50))),
      ...s.push(Buffer.from("y".repeat(50))),
      ...s.push(Buffer.from("z\n2 check\n")),
    ];
    expect(out).toEqual(["1 check", { tooLong: 53, head: `77 ${"x".repeat(29)}` }, "2 check"]);
    // A partial oversized line at the end is not returned as a line.
    expect(s.push(Buffer.from("9".repeat(30)))).toEqual([{ tooLong: 30, head: "9".repeat(30) }]);
    expect(s.end()).toBeNull();
  });

  it("gives the same lines however the bytes are chunked", () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[a-z0-9 ]{0,40}$/), { maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 20 }),
        (lines, cuts) => {
          const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(""));
          const s = new LineSplitter(15);
          const out: unknown[] = [];
          let at = 0;
          let i = 0;
          while (at < bytes.length) {
            const n = cuts[i++ % cuts.length]!;
            out.push(...s.push(bytes.subarray(at, at + n)));
            at += n;
          }
          expect(out.length).toBe(lines.length);
          out.forEach((o, k) => {
            if (lines[k]!.length > 15) {
              // Its first bytes, at least as many as made it too long, for the answer's id.
              const head = (o as { head: string }).head;
              expect(o).toEqual({ tooLong: expect.any(Number), head: expect.any(String) });
              expect(head.length).toBeGreaterThan(15);
              expect(lines[k]!.startsWith(head)).toBe(true);
            } else expect(o).toBe(lines[k]);
          });
        },
      ),
    );
  });
});

describe("requests are completed from the properties, never from the caller", () => {
  const facts: HelperFactArgs = {
    dataDir: "/var/lib/postgresql/15/main",
    bin: "/usr/lib/postgresql/15/bin",
    passfile: "/var/lib/postgresql/15/efm-acctg.pgpass",
    port: 5444,
    replicationUser: "efm",
  };

  it("fills the data directory, db.bin, the password file, db.port and db.user in", () => {
    expect(parseHelperRequest(["fence", "10.0.1.12", "--timeout", "5"], facts)).toEqual({
      verb: "fence",
      dataDir: facts.dataDir,
      newMaster: "10.0.1.12",
      timeoutSeconds: 5,
      port: 5444,
      replicationUser: "efm",
      bin: facts.bin,
      connection: "stdin",
      passfile: facts.passfile,
    });
    expect(parseHelperRequest(["promote"], facts)).toMatchObject({ verb: "promote", dataDir: facts.dataDir });
    expect(parseHelperRequest(["restart", "30", "--mode", "immediate"], facts)).toMatchObject({
      verb: "restart",
      timeoutSeconds: 30,
      mode: "immediate",
    });
  });

  it.each(FACT_OPTIONS.map((o) => [o]))("refuses %s from the caller, naming it", (option) => {
    expect(refusal(() => parseHelperRequest(["promote", option, "/tmp/evil"], facts))).toBe(
      `promote: ${option} is taken from the cluster's properties file, never from the request`,
    );
  });

  it("fills a rejoin's base-backup permission, source role and bound in from the properties", () => {
    const rejoin = { basebackup: true, sourceUser: "rewinder", timeoutSeconds: 180 };
    expect(parseHelperRequest(["rejoin", "10.0.1.12"], { ...facts, rejoin })).toMatchObject({
      verb: "rejoin",
      newMaster: "10.0.1.12",
      basebackup: true,
      sourceUser: "rewinder",
      timeoutSeconds: 180,
      replicationUser: "efm",
    });
    const plain = parseHelperRequest(["rejoin", "h"], {
      ...facts,
      rejoin: { basebackup: false, timeoutSeconds: 120 },
    });
    expect(plain).toMatchObject({ basebackup: false, timeoutSeconds: 120 });
    expect(plain).not.toHaveProperty("sourceUser");
  });

  it.each(REJOIN_FACT_OPTIONS.map((o) => [o]))(
    "refuses a rejoin's %s from the caller, naming it",
    (option) => {
      const rejoin = { basebackup: false, timeoutSeconds: 120 };
      expect(refusal(() => parseHelperRequest(["rejoin", "h", option, "allow"], { ...facts, rejoin }))).toBe(
        `rejoin: ${option} is taken from the cluster's properties file (db.rejoin.basebackup, db.rewind.source.user, local.timeout), never from the request`,
      );
    },
  );

  it("refuses a rejoin when the helper read no rejoin settings", () => {
    expect(refusal(() => parseHelperRequest(["rejoin", "h"], facts))).toBe(
      "rejoin: the helper read no rejoin settings",
    );
  });

  it.each([
    [["frobnicate"], 'unknown verb "frobnicate"'],
    [[], 'unknown verb ""'],
    [["fence"], "fence needs"],
    [["fence", "h;rm"], "not a host name"],
    [["promote", "--timeout", "0"], "not a whole number from 1"],
    [["check", "--role", "master"], "not any or standby"],
    [["__proto__"], 'unknown verb "__proto__"'],
  ])("refuses %j", (tokens, words) => {
    expect(refusal(() => parseHelperRequest(tokens, facts))).toContain(words);
  });

  it("shows the request syntax in its usage, not the old command line with <datadir> and --bin", () => {
    let message = "";
    try {
      parseHelperRequest(["fence"], facts);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("usage: efm-helper <cluster>");
    expect(message).toContain("fence <new-master-host>|- [--timeout <s>]");
    expect(message).not.toContain("<datadir>");
    expect(message).not.toContain("--bin");
  });
});

describe("HelperClient", () => {
  it("falls back to one process per request when the long-lived helper cannot start, saying why", async () => {
    const logged: string[] = [];
    const client = new HelperClient(
      {
        cluster: "acctg",
        // A helper that refuses to start the way the real one does, with a code and a reason.
        helperCommand: [
          process.execPath,
          "-e",
          'console.log(JSON.stringify({ready:false,code:"PROPERTIES_UNSAFE",message:"/etc/efm/acctg.properties is writable by others"}));process.exit(1)',
        ],
        elevation: "direct",
      },
      (level, message) => logged.push(`${level}: ${message}`),
    );
    const started = await client.start();
    expect(started.persistent).toBe(false);
    expect(client.fallbackReason).toContain("/etc/efm/acctg.properties is writable by others");
    expect(logged).toEqual([
      expect.stringMatching(
        /^warn: long-lived privileged helper not started, one process per request instead: .*writable by others/,
      ),
    ]);
    const err = await client.request(["check"], 10_000).catch((e: unknown) => e);
    expect(isScriptsRunnerError(err, "PROPERTIES_UNSAFE"), String(err)).toBe(true);
    await client.close();
  });

  it("sends a rejoin as the new master alone, checked by the helper's grammar before it leaves", async () => {
    // A stand-in helper that says ready, then answers each request line with the tokens it got.
    const echo = `const rl = require("node:readline").createInterface({ input: process.stdin });
      console.log(JSON.stringify({ ready: true, cluster: "acctg", properties: "/p", owner: "postgres", dataDir: "/d", pid: process.pid }));
      rl.on("line", (l) => { const [id, ...tokens] = l.split(" "); console.log(JSON.stringify({ id, ok: true, actions: tokens })); });`;
    const target = {
      cluster: "acctg",
      helperCommand: [process.execPath, "-e", echo],
      elevation: "direct" as const,
    };
    const client = new HelperClient(target);
    expect((await client.start()).persistent).toBe(true);
    const report = await rejoin(client, "10.0.1.12", { timeoutSeconds: 120 });
    expect(report.actions).toEqual(["rejoin", "10.0.1.12"]);
    await client.close();
  });

  it("a helper that dies before it is ready is a clear start failure, not a hang", async () => {
    const client = new HelperClient({
      cluster: "acctg",
      helperCommand: [process.execPath, "-e", "process.stderr.write('boom');process.exit(3)"],
      elevation: "direct",
    });
    const started = await client.start();
    expect(started).toMatchObject({ persistent: false });
    expect((started as { why: string }).why).toContain("ended (exit code 3) before it was ready: boom");
    await client.close();
  });
});
