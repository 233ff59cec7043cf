import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { writeFileAtomic } from "./atomic.ts";
import { parseNodes, printNodes, readNodes, writeNodes } from "./nodes.ts";

const dir = mkdtempSync(join(tmpdir(), "efm-nodes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("members file", () => {
  test("entries separated by any white space, comments, host names", () => {
    const r = parseNodes(
      "# members\n10.0.1.8:7800 10.0.1.9:7800\n\tdb3.example.com:7800  # third\n[fd00::1]:7800\n",
      "acctg.nodes",
    );
    expect(r.errors).toEqual([]);
    expect(r.nodes.map((n) => [n.host, n.port, n.line])).toEqual([
      ["10.0.1.8", 7800, 2],
      ["10.0.1.9", 7800, 2],
      ["db3.example.com", 7800, 3],
      ["fd00::1", 7800, 4],
    ]);
  });

  test("malformed entries are reported with their line; repeats warn", () => {
    const r = parseNodes("10.0.1.8:7800\n10.0.1.9\n10.0.1.8:7800 10.0.1.10:99999\n", "acctg.nodes");
    expect(r.errors.map((e) => [e.line, e.value])).toEqual([
      [2, "10.0.1.9"],
      [3, "10.0.1.10:99999"],
    ]);
    expect(r.warnings.map((w) => [w.line, w.message])).toEqual([
      [3, '"10.0.1.8:7800" is already listed on line 1'],
    ]);
    expect(r.nodes).toHaveLength(1);
  });

  test("each stray word of a line is named in its error, so two on one line read as two", () => {
    const r = parseNodes("junk here\n10.0.1.8:7800\n", "acctg.nodes");
    expect(r.errors.map((e) => `${e.line}: ${e.message}`)).toEqual([
      '1: "junk": expected <ip-or-host>:<port> with a port from 1 to 65535, for example 10.0.1.8:7800',
      '1: "here": expected <ip-or-host>:<port> with a port from 1 to 65535, for example 10.0.1.8:7800',
    ]);
  });

  test("a mistyped IPv4 address is refused, not taken for a host name", () => {
    const r = parseNodes("300.1.1.1:7800 10.0.1:7800 db3:7800 10.0.1.8:7800\n", "acctg.nodes");
    expect(r.errors.map((e) => e.value)).toEqual(["300.1.1.1:7800", "10.0.1:7800"]);
    expect(r.nodes.map((n) => n.host)).toEqual(["db3", "10.0.1.8"]);
  });

  test("write then read gives the same members; a missing file is empty", () => {
    const path = join(dir, "acctg.nodes");
    expect(readNodes(path).nodes).toEqual([]);
    const members = [
      { host: "10.0.1.8", port: 7800 },
      { host: "fd00::1", port: 7801 },
    ];
    writeNodes(path, members);
    expect(readNodes(path).nodes.map(({ host, port }) => ({ host, port }))).toEqual(members);
    expect(parseNodes(printNodes(members), "x").errors).toEqual([]);
  });

  test("atomic write keeps the mode of an existing file and leaves no temp file", () => {
    const path = join(dir, "keep.nodes");
    writeFileSync(path, "old", { mode: 0o640 });
    writeFileAtomic(path, "new");
    expect(readFileSync(path, "utf8")).toBe("new");
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
