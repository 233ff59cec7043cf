#!/usr/bin/env node
// efm-helper: the one program the agent runs as db.service.owner (via `sudo -n -u <owner>`).
// Fixed grammar (see HELPER_USAGE); prints one JSON line: {"ok":true,...report} or
// {"ok":false,"code":...,"message":...}. Exit 0 on success, 2 on a usage error, 1 otherwise.
import { userInfo } from "node:os";
import { ScriptsRunnerError } from "./errors.ts";
import { parseHelperArgs } from "./helper-grammar.ts";
import { executeHelperCommand } from "./helper-ops.ts";

// sudo and runuser may leave the caller's HOME; libpq-style ~/.pgpass lookups need the owner's.
process.env.HOME = userInfo().homedir;

try {
  const report = await executeHelperCommand(parseHelperArgs(process.argv.slice(2)));
  process.stdout.write(`${JSON.stringify({ ok: true, ...report })}\n`);
} catch (e) {
  const code = e instanceof ScriptsRunnerError ? e.code : "HELPER_FAILED";
  const message = e instanceof Error ? e.message : String(e);
  process.stdout.write(`${JSON.stringify({ ok: false, code, message })}\n`);
  process.exitCode = code === "HELPER_USAGE" ? 2 : 1;
}
