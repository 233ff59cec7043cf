import { PassThrough } from "node:stream";
import { decisionTable, transitions } from "@efm/failover-core";
import { describe, expect, test } from "vitest";
import type { Io } from "./encrypt.ts";
import { buildProgram } from "./main.ts";

async function efm(args: string[]) {
  const output = new PassThrough();
  let text = "";
  output.on("data", (c) => {
    text += c.toString();
  });
  const io: Io = { input: new PassThrough(), output, env: {} };
  let status = -1;
  const program = buildProgram(io, (s) => {
    status = s;
  });
  // Subcommands copy settings when created, so the override and quiet errors go on each of them.
  for (const c of [program, ...program.commands]) c.exitOverride().configureOutput({ writeErr: () => {} });
  await program.parseAsync(["node", "efm", ...args]);
  return { status, text };
}

/**
 * A small parser for the DOT subset the command prints (statements `"a";` and
 * `"a" -> "b" [label="..."];` inside `digraph name { ... }`), strict enough to reject
 * unbalanced braces, unterminated strings or a statement it does not know.
 */
function parseDot(text: string): { name: string; nodes: Set<string>; edges: [string, string, string][] } {
  const lines = text.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("//"));
  const head = /^digraph (\w+) \{$/.exec(lines[0] ?? "");
  if (!head) throw new Error(`not a digraph header: ${lines[0]}`);
  if (lines.at(-1) !== "}") throw new Error(`last line is not "}": ${lines.at(-1)}`);
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === "\\") i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "{") depth++;
    else if (ch === "}") {
      depth--;
      if (depth < 0) throw new Error("a } closes nothing");
    }
  }
  if (inString || depth !== 0) throw new Error(`unbalanced: depth ${depth}, in string ${inString}`);
  const str = String.raw`"((?:[^"\\]|\\.)*)"`;
  const nodeRe = new RegExp(`^\\s+${str};$`);
  const edgeRe = new RegExp(`^\\s+${str} -> ${str} \\[label=${str}\\];$`);
  const nodes = new Set<string>();
  const edges: [string, string, string][] = [];
  for (const l of lines.slice(1, -1)) {
    const e = edgeRe.exec(l);
    const n = nodeRe.exec(l);
    if (e) edges.push([e[1] ?? "", e[2] ?? "", e[3] ?? ""]);
    else if (n) nodes.add(n[1] ?? "");
    else if (!/^\s+(rankdir=LR|node \[[^\]]*\]);$/.test(l)) throw new Error(`unknown statement: ${l}`);
  }
  return { name: head[1] ?? "", nodes, edges };
}

describe("efm decision-table", () => {
  test("prints every row of the table, one per line, with a header", async () => {
    const r = await efm(["decision-table"]);
    expect(r.status).toBe(0);
    const lines = r.text.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+FROM\s+ON\s+TO\s+GUARD \| ACTIONS \| REASON$/);
    const table = decisionTable();
    expect(lines).toHaveLength(table.length + 1);
    table.forEach((row, i) => {
      const line = lines[i + 1] ?? "";
      expect(line.startsWith(`${row.id} `)).toBe(true);
      expect(line).toContain(row.reason);
      expect(line).toContain(` ${row.to} `);
    });
  });

  test("--dot is a digraph whose edges join declared states, one edge per row and source", async () => {
    const r = await efm(["decision-table", "--dot"]);
    expect(r.status).toBe(0);
    const g = parseDot(r.text);
    expect(g.name).toBe("failover_core");
    for (const [from, to] of g.edges) {
      expect(g.nodes.has(from), `edge from undeclared ${from}`).toBe(true);
      expect(g.nodes.has(to), `edge to undeclared ${to}`).toBe(true);
    }
    for (const row of decisionTable()) {
      const mine = g.edges.filter(([, , label]) => label.startsWith(`${row.id}: `));
      expect(mine.length, row.id).toBeGreaterThan(0);
      for (const [from, to] of mine) {
        if (row.to === "unchanged") expect(to).toBe(from);
        else expect(to).toBe(row.to);
        if (!row.from.includes("*")) expect(row.from).toContain(from);
      }
    }
  });

  test("ends with the generated rows: every event a state drops is printed as stale or ignored", async () => {
    const lines = (await efm(["decision-table"])).text.trimEnd().split("\n");
    const generated = lines.slice(transitions.length + 1);
    expect(generated.length).toBeGreaterThan(0);
    for (const l of generated)
      expect(l).toMatch(/^(stale|ignore)\.\S+\s+\S+\s+\S+\s+unchanged\s+.* \| none \| .*ignored$/);
    // One named example of each kind: a start-up timer means nothing to a master; a fence result
    // whose token is no fence's is stale.
    expect(lines.some((l) => l.startsWith("ignore.Master.timer:startupChecks "))).toBe(true);
    expect(lines.some((l) => l.startsWith("stale.Master.dbFenced "))).toBe(true);
  });

  test("the dot parser used above rejects unbalanced output", () => {
    expect(() => parseDot('digraph g {\n  "a";\n  "a" -> "b" [label="x"];\n')).toThrow();
    expect(() => parseDot('digraph g {\n  "a;\n}\n')).toThrow();
  });

  test("takes no cluster name: a stray argument is refused, not ignored", async () => {
    await expect(efm(["decision-table", "acctg"])).rejects.toThrow(/too many arguments/);
  });
});
