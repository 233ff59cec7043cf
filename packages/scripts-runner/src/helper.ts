#!/usr/bin/env node
// efm-helper: the one program the agent runs as db.service.owner (via `sudo -n -u <owner>`).
// Fixed grammar (see HELPER_USAGE); prints one JSON line: {"ok":true,...report} or
// {"ok":false,"code":...,"message":...}. Exit 0 on success, 2 on a usage error, 1 otherwise.
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { ScriptsRunnerError } from "./errors.ts";
import { parseHelperArgs } from "./helper-grammar.ts";
import { executeHelperCommand, parseHelperConnection } from "./helper-ops.ts";

// sudo and runuser may leave the caller's HOME; libpq-style ~/.pgpass lookups need the owner's.
process.env.HOME = userInfo().homedir;

try {
  const command = parseHelperArgs(process.argv.slice(2));
  // The password comes on stdin (a pipe from the agent), never in argv or the environment.
  const conn = command.connection === "stdin" ? parseHelperConnection(readFileSync(0, "utf8")) : undefined;
  const report = await executeHelperCommand(command, conn);
  process.stdout.write(`${JSON.stringify({ ok: true, ...report })}\n`);
} catch (e) {
  const code = e instanceof ScriptsRunnerError ? e.code : "HELPER_FAILED";
  const message = e instanceof Error ? e.message : String(e);
  process.stdout.write(`${JSON.stringify({ ok: false, code, message })}\n`);
  process.exitCode = code === "HELPER_USAGE" ? 2 : 1;
}
