import { readFileSync } from "node:fs";
import type { PersistedFailoverState } from "@efm/failover-core";
import { z } from "zod";
import { AgentError } from "./errors.ts";

const schema = z.object({
  lastMaster: z.string().nullable(),
  epoch: z.number().int().nonnegative(),
  rebuildNeeded: z.boolean(),
  // synchronous.mode: the newest published synchronous standby set (absent from older files).
  syncStandbys: z
    .object({
      standbys: z.array(z.string()),
      epoch: z.number().int().nonnegative(),
      seq: z.number().int().nonnegative(),
    })
    .optional(),
  // The newest promotion's fork known (absent from older files).
  newestFork: z
    .object({
      parent: z.number().int().positive(),
      lsn: z
        .string()
        .regex(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/)
        .nullable(),
    })
    .optional(),
});

/**
 * The failover engine's persisted record (last master, promotion epoch, rebuild flag): undefined
 * on a first start (no file). An unreadable or corrupt file stops the start: without it a fenced
 * ex-master would forget it must be rebuilt, and a restarted agent the lease of the last master.
 */
export function readFailoverState(path: string): PersistedFailoverState | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new AgentError("IO", `cannot read the failover state file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AgentError(
      "IO",
      `the failover state file ${path} is corrupt (not JSON: ${(err as Error).message}); restore it, or delete it only after checking this node's database is not a fenced ex-master that needs a rebuild`,
      { cause: err },
    );
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const where = r.error.issues.map((i) => `${i.path.join(".") || "top level"}: ${i.message}`).join("; ");
    throw new AgentError(
      "IO",
      `the failover state file ${path} is corrupt (${where}); restore it, or delete it only after checking this node's database is not a fenced ex-master that needs a rebuild`,
    );
  }
  return r.data;
}

/** The file's contents for `state` (the agent writes it with a DurableFile: atomic, fsync'd). */
export function failoverStateText(state: PersistedFailoverState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}
