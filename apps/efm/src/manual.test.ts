import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { buildProgram as agentProgram } from "@efm/agent/main";
import type { Command } from "commander";
import { afterAll, describe, expect, test } from "vitest";
import { generatedDocs } from "./gen-docs.ts";
import { buildProgram } from "./main.ts";

const root = new URL("../", import.meta.url);
const checkedIn = (path: string) => readFileSync(new URL(path, root), "utf8");
const docs = generatedDocs();

/** The text a reader sees: roff escapes and font changes removed. */
const plain = (page: string) =>
  page
    .replace(/\\f[BIR]/g, "")
    .replace(/\\-/g, "-")
    .replace(/\\e/g, "\\")
    .replace(/\\&/g, "");

const efm = () => buildProgram({ input: new PassThrough(), output: new PassThrough(), env: {} }, () => {});

describe("man pages", () => {
  test.each(Object.keys(docs))(
    "%s is the generated text (run `pnpm --filter @efm/cli gen-docs` after changing a command)",
    (path) => {
      expect(checkedIn(path)).toBe(docs[path]);
    },
  );

  /** Every line of a command's --help that describes something appears in the page. */
  function helpLines(program: Command): string[] {
    const lines: string[] = [];
    const collect = (cmd: Command) => {
      const help = cmd.createHelp();
      lines.push(cmd.description());
      for (const a of help.visibleArguments(cmd)) lines.push(help.argumentDescription(a));
      for (const o of help.visibleOptions(cmd)) lines.push(help.optionTerm(o), help.optionDescription(o));
      for (const c of help.visibleCommands(cmd)) if (c.name() !== "help") lines.push(help.subcommandTerm(c));
    };
    collect(program);
    for (const c of program.commands) if (c.name() !== "help") collect(c);
    return lines;
  }

  test.each([
    ["man/efm.1", efm],
    ["man/efm-agent.8", agentProgram],
  ] as const)("%s says everything --help says", (path, program) => {
    const page = plain(checkedIn(path));
    const p = program();
    // --help itself lists these commands: the page must name each, with its arguments.
    for (const line of helpLines(p)) expect(page, line).toContain(line);
    expect(p.helpInformation()).toContain("Usage:");
    for (const c of p.commands.filter((x) => x.name() !== "help")) {
      expect(page).toContain(`${p.name()} ${c.createHelp().subcommandTerm(c)}`);
    }
  });

  test("groff reads both pages without a warning", () => {
    const out = execFileSync(
      "groff",
      ["-ww", "-z", "-man", new URL("man/efm.1", root).pathname, new URL("man/efm-agent.8", root).pathname],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    expect(out).toBe("");
  });
});

describe("bash completion", () => {
  const dir = mkdtempSync(join(tmpdir(), "efm-completion-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "etc"));
  mkdirSync(join(dir, "other"));
  for (const f of ["acctg.properties", "acctg.nodes", "sales.properties"])
    writeFileSync(join(dir, "etc", f), "");
  writeFileSync(join(dir, "other", "hr.properties"), "");

  /** Run the completion function for a command line whose last word is being typed. */
  function complete(line: string[], env: Record<string, string> = {}): string[] {
    const script = `
      source ${JSON.stringify(new URL("completion/efm.bash", root).pathname)}
      COMP_WORDS=(${line.map((w) => JSON.stringify(w)).join(" ")})
      COMP_CWORD=${line.length - 1}
      ${line[0] === "efm-agent" ? "_efm_agent" : "_efm"}
      printf '%s\\n' "\${COMPREPLY[@]}"`;
    const out = execFileSync("bash", ["--norc", "-c", script], {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", EFM_CONFIG_DIR: join(dir, "etc"), ...env },
    });
    return out.split("\n").filter((w) => w !== "");
  }

  test("completes command names", () => {
    expect(complete(["efm", "cluster-"])).toEqual(["cluster-status", "cluster-status-json"]);
    expect(complete(["efm", ""])).toEqual(
      efm()
        .commands.map((c) => c.name())
        .filter((n) => n !== "help"),
    );
    expect(complete(["efm-agent", ""])).toEqual(["start"]);
  });

  test("completes cluster names from the config directory, --config-dir first", () => {
    expect(complete(["efm", "cluster-status", ""])).toEqual(["acctg", "sales"]);
    expect(complete(["efm", "promote", "s"])).toEqual(["sales"]);
    expect(complete(["efm", "--config-dir", join(dir, "other"), "resume", ""])).toEqual(["hr"]);
    expect(complete(["efm-agent", "start", ""])).toEqual(["acctg", "sales"]);
    // Only the first argument is a cluster.
    expect(complete(["efm", "add-node", "acctg", ""])).toEqual([]);
  });

  test("completes a command's options", () => {
    expect(complete(["efm", "promote", "acctg", "--"])).toEqual([
      "--force",
      "--switchover",
      "--to",
      "--help",
    ]);
    expect(complete(["efm", "--c"])).toEqual(["--config-dir"]);
    expect(complete(["efm-agent", "start", "--c"])).toEqual(["--config-dir"]);
  });
});
