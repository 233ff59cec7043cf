#!/usr/bin/env node
// efm-helper <cluster>: the one program the agent runs with privileges (`sudo -n efm-helper
// <cluster>`, directly when the agent is root). Its only argument is the cluster name: the
// data directory, db.bin, the database owner and the connection come from the root-owned
// /etc/efm/<cluster>.properties (helper-facts.ts), never from the caller. It becomes
// db.service.owner, says whether it is ready on its first stdout line, then answers requests
// (helper-protocol.ts) one at a time, one JSON line each, until stdin closes.
import { userInfo } from "node:os";
import { ScriptsRunnerError } from "./errors.ts";
import { checkKnownMember, type HelperFacts, loadHelperFacts, membersFileOf } from "./helper-facts.ts";
import { parseHelperRequest } from "./helper-grammar.ts";
import { executeHelperCommand } from "./helper-ops.ts";
import {
  LineSplitter,
  MAX_REQUEST_BYTES,
  parseRequestLine,
  requestIdOf,
  type TooLong,
} from "./helper-protocol.ts";

// sudo and runuser may leave the caller's HOME; libpq-style ~/.pgpass lookups need our own.
process.env.HOME = userInfo().homedir;

function say(value: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function failure(e: unknown): { code: string; message: string } {
  return {
    code: e instanceof ScriptsRunnerError ? e.code : "HELPER_FAILED",
    message: e instanceof Error ? e.message : String(e),
  };
}

// The agent ends a request it gave up on by ending the helper (SIGTERM, relayed by sudo);
// nothing half-done is reported as done because nothing more is reported at all.
process.on("SIGTERM", () => process.exit(143));
// The agent is gone: nobody will read an answer.
process.stdout.on("error", () => process.exit(1));

async function answer(item: string | TooLong, facts: HelperFacts): Promise<void> {
  if (typeof item !== "string") {
    say({
      id: requestIdOf(item.head),
      ok: false,
      code: "HELPER_USAGE",
      message: `request line of more than ${MAX_REQUEST_BYTES} bytes (${item.tooLong} seen) dropped`,
    });
    return;
  }
  const id = requestIdOf(item);
  try {
    const request = parseRequestLine(item);
    const command = parseHelperRequest(request.tokens, facts);
    // The one verb that may overwrite this database from another host takes it from the members.
    if (command.verb === "rejoin") checkKnownMember(command.newMaster, membersFileOf(facts), facts.members);
    const report = await executeHelperCommand(command, facts.connection);
    say({ id: request.id, ok: true, ...report });
  } catch (e) {
    say({ id, ok: false, ...failure(e) });
  }
}

function serve(facts: HelperFacts): void {
  const splitter = new LineSplitter(MAX_REQUEST_BYTES);
  const queue: Array<string | TooLong> = [];
  let busy = false;
  let ended = false;
  const next = async () => {
    if (busy) return;
    busy = true;
    while (queue.length > 0) await answer(queue.shift()!, facts);
    busy = false;
    // stdin closed and every request answered (a one-shot call ends this way).
    if (ended) process.exit(0);
  };
  process.stdin.on("data", (chunk: Buffer) => {
    queue.push(...splitter.push(chunk));
    void next();
  });
  process.stdin.on("end", () => {
    const rest = splitter.end();
    if (rest !== null) queue.push(rest);
    ended = true;
    void next();
  });
}

const args = process.argv.slice(2);
if (args.length !== 1) {
  say({
    ready: false,
    code: "HELPER_USAGE",
    message: `usage: efm-helper <cluster> (exactly one argument, the cluster name; got ${args.length})`,
  });
  process.exitCode = 2;
} else {
  let facts: HelperFacts | undefined;
  try {
    facts = loadHelperFacts(args[0]!, process.env);
  } catch (e) {
    say({ ready: false, ...failure(e) });
    process.exitCode = 1;
  }
  if (facts !== undefined) {
    say({
      ready: true,
      cluster: facts.cluster,
      properties: facts.propertiesFile,
      owner: facts.owner,
      dataDir: facts.dataDir,
      // What the agent compares with its own properties at start-up (fact-check.ts).
      bin: facts.bin,
      vip: facts.vip,
      pid: process.pid,
    });
    serve(facts);
  }
}
