import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  conninfoValue,
  formatConninfo,
  parseConninfo,
  quoteConninfoValue,
  setConninfoHost,
} from "./conninfo.ts";
import { isScriptsRunnerError } from "./errors.ts";
import { configValue, parseConfigFile, quoteConfigValue, setConfigValue } from "./pg-config-file.ts";

const pairs = (text: string) => parseConninfo(text).map((e) => [e.keyword, e.value]);

describe("parseConninfo (libpq rules)", () => {
  it("reads plain pairs", () => {
    expect(pairs("host=10.0.0.1 port=5432 user=repl")).toEqual([
      ["host", "10.0.0.1"],
      ["port", "5432"],
      ["user", "repl"],
    ]);
  });
  it("allows blanks around = and any C whitespace between pairs", () => {
    expect(pairs(" host =  a\t\nport\v=\f5 \r")).toEqual([
      ["host", "a"],
      ["port", "5"],
    ]);
  });
  it("reads quoted values with backslash escapes", () => {
    expect(pairs(String.raw`password='it\'s a \\ secret' application_name='' host=x`)).toEqual([
      ["password", String.raw`it's a \ secret`],
      ["application_name", ""],
      ["host", "x"],
    ]);
  });
  it("reads backslash escapes in unquoted values", () => {
    expect(pairs(String.raw`password=a\ b\'c\\ host=h`)).toEqual([
      ["password", String.raw`a b'c\ `.trimEnd()],
      ["host", "h"],
    ]);
  });
  it("starts the next keyword right after a closing quote, like libpq", () => {
    expect(pairs("host='a'port=5")).toEqual([
      ["host", "a"],
      ["port", "5"],
    ]);
  });
  it("takes the text after 'key= ' as the value even when it looks like a pair", () => {
    expect(pairs("host= port=5")).toEqual([["host", "port=5"]]);
  });
  it("keeps '=' inside values", () => {
    expect(pairs("options=-c\\ a=b")).toEqual([["options", "-c a=b"]]);
  });
  it("parses the empty string and blanks to nothing", () => {
    expect(pairs("")).toEqual([]);
    expect(pairs("   ")).toEqual([]);
  });
  it.each([
    ["host", "missing"],
    ["host=a port", "missing"],
    ["=a", "empty keyword"],
    ["host='a", "unterminated"],
    ["password='a\\'", "unterminated"],
    ["postgresql://u@h/db", "URI"],
  ])("refuses %j", (text, words) => {
    try {
      parseConninfo(text);
      expect.unreachable();
    } catch (e) {
      expect(isScriptsRunnerError(e, "CONNINFO_INVALID")).toBe(true);
      expect((e as Error).message).toContain(words);
    }
  });
  it("reports where each value's text sits", () => {
    const text = "user=u host = 'a b' port=1";
    const host = parseConninfo(text)[1]!;
    expect(text.slice(host.valueStart, host.valueEnd)).toBe("'a b'");
  });
});

describe("quoting", () => {
  it("leaves simple values bare and quotes the rest", () => {
    expect(quoteConninfoValue("db.example_1")).toBe("db.example_1");
    expect(quoteConninfoValue("")).toBe("''");
    expect(quoteConninfoValue("a b")).toBe("'a b'");
    expect(quoteConninfoValue("it's\\")).toBe(String.raw`'it\'s\\'`);
  });
  it("refuses a keyword that is not one", () => {
    expect(() => formatConninfo([["a b", "x"]])).toThrow(/not a connection keyword/);
  });
});

describe("setConninfoHost", () => {
  it("changes only the host value", () => {
    const before = "user=replicator  password='se cr\\'et' host=10.0.0.1 port=5432 application_name=node_c";
    expect(setConninfoHost(before, "10.0.0.2")).toBe(
      "user=replicator  password='se cr\\'et' host=10.0.0.2 port=5432 application_name=node_c",
    );
  });
  it("replaces a quoted host and every duplicate", () => {
    expect(setConninfoHost("host='old one' port=1 host=old2", "new")).toBe("host=new port=1 host=new");
  });
  it("appends host when there was none", () => {
    expect(setConninfoHost("user=u", "h")).toBe("user=u host=h");
    expect(setConninfoHost("", "h")).toBe("host=h");
    expect(setConninfoHost("user=u ", "h")).toBe("user=u host=h");
  });
  it("replaces hostaddr too when the new master is an IP address", () => {
    expect(setConninfoHost("host=a hostaddr=10.0.0.1", "10.0.0.2")).toBe("host=10.0.0.2 hostaddr=10.0.0.2");
    expect(() => setConninfoHost("hostaddr=10.0.0.1", "db2.example")).toThrow(/hostaddr/);
  });
  it("refuses hosts that are lists and port lists", () => {
    expect(() => setConninfoHost("host=a", "b,c")).toThrow(/single host/);
    expect(() => setConninfoHost("host=a", "")).toThrow(/single host/);
    expect(() => setConninfoHost("host=a,b port=1,2", "c")).toThrow(/several ports/);
  });
});

// Values libpq can carry: anything but NUL.
const value = fc.string({ unit: "binary", maxLength: 12 }).filter((s) => !s.includes("\0"));
const keyword = fc.stringMatching(/^[a-z_][a-z0-9_]{0,10}$/);
const blank = fc.constantFrom(" ", "\t", "\n", "\r", "\f", "\v", "  ");

describe("properties", () => {
  it("format then parse gives back the pairs", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(keyword, value), { maxLength: 8 }), (ps) => {
        expect(pairs(formatConninfo(ps))).toEqual(ps);
      }),
    );
  });

  it("arbitrary blanks between and around pairs change nothing", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keyword, value, blank, blank, blank), { maxLength: 6 }),
        blank,
        (ps, lead) => {
          const text =
            lead + ps.map(([k, v, b1, b2, b3]) => `${k}${b1}=${b2}${quoteConninfoValue(v)}${b3}`).join(" ");
          expect(pairs(text)).toEqual(ps.map(([k, v]) => [k, v]));
        },
      ),
    );
  });

  it("setConninfoHost sets host and keeps every other pair and its text", () => {
    const host = fc.oneof(fc.ipV4(), fc.domain(), fc.ipV6());
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom("user", "password", "port", "sslmode", "application_name", "host"), value),
          {
            maxLength: 6,
          },
        ),
        host,
        (ps, h) => {
          // Port lists are refused on purpose (tested above).
          fc.pre(!ps.some(([k, v]) => k === "port" && v.includes(",")));
          const before = formatConninfo(ps);
          const after = setConninfoHost(before, h);
          expect(conninfoValue(after, "host")).toBe(h);
          const others = (t: string) => pairs(t).filter(([k]) => k !== "host");
          expect(others(after)).toEqual(others(before));
          const untouched = (t: string) =>
            parseConninfo(t)
              .filter((e) => e.keyword !== "host")
              .map((e) => t.slice(e.valueStart, e.valueEnd));
          expect(untouched(after)).toEqual(untouched(before));
        },
      ),
    );
  });

  it("never throws anything but a typed error on arbitrary input", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (text) => {
        try {
          parseConninfo(text);
        } catch (e) {
          expect(isScriptsRunnerError(e, "CONNINFO_INVALID")).toBe(true);
        }
      }),
    );
  });

  it("config-file quoting round-trips any single-line value", () => {
    const line = fc.string({ unit: "binary", maxLength: 30 }).filter((s) => !/[\n\r\0]/.test(s));
    fc.assert(
      fc.property(line, (v) => {
        const text = setConfigValue("# comment\nwork_mem = 4MB\n", "auto.conf", "primary_conninfo", v);
        expect(configValue(text, "auto.conf", "primary_conninfo")).toBe(v);
        expect(configValue(text, "auto.conf", "work_mem")).toBe("4MB");
      }),
    );
  });
});

describe("PostgreSQL configuration files", () => {
  const auto = [
    "# Do not edit this file manually!",
    "# It will be overwritten by the ALTER SYSTEM command.",
    "primary_conninfo = 'user=postgres passfile=''/var/lib/postgresql/.pgpass'' host=127.0.3.1 port=15403'",
    "Work_Mem=64MB   # trailing comment",
    "search_path = '\"$user\", public'",
    "data = 'a\\tb\\101\\\\'",
    "",
  ].join("\n");

  it("reads settings the way the server does", () => {
    expect(parseConfigFile(auto, "postgresql.auto.conf")).toEqual([
      {
        name: "primary_conninfo",
        value: "user=postgres passfile='/var/lib/postgresql/.pgpass' host=127.0.3.1 port=15403",
        line: 2,
      },
      { name: "work_mem", value: "64MB", line: 3 },
      { name: "search_path", value: '"$user", public', line: 4 },
      { name: "data", value: "a\tbA\\", line: 5 },
    ]);
  });

  it("rewrites only the line of the setting", () => {
    const changed = setConfigValue(auto, "postgresql.auto.conf", "PRIMARY_CONNINFO", "host=b user='x'");
    const lines = changed.split("\n");
    expect(lines[2]).toBe("PRIMARY_CONNINFO = 'host=b user=''x'''");
    expect(lines.filter((_, i) => i !== 2)).toEqual(auto.split("\n").filter((_, i) => i !== 2));
  });

  it("appends a setting that is not there, with a newline", () => {
    expect(setConfigValue("a = 1", "f", "b", "x")).toBe("a = 1\nb = 'x'\n");
    expect(setConfigValue("", "f", "b", "x")).toBe("b = 'x'\n");
  });

  it("names file and line in errors", () => {
    expect(() => parseConfigFile("a = 1\nb = 'open\n", "recovery.conf")).toThrow(
      /recovery.conf:2: unterminated/,
    );
    expect(() => parseConfigFile("= 1", "x.conf")).toThrow(/x.conf:1: syntax error/);
    expect(() => parseConfigFile("a = 1 2", "x.conf")).toThrow(/x.conf:1: unexpected/);
    expect(() => quoteConfigValue("a\nb")).toThrow(/line break/);
  });
});
