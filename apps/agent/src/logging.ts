import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { LogLevel } from "@efm/properties-parser";
import pino, { type DestinationStream, type Logger } from "pino";

/**
 * Java logging levels (guide section 6) onto pino levels. FINEST and FINER both become
 * `trace`, FINE and CONFIG `debug`: pino has fewer levels, and the finer distinctions only
 * ever mattered for JGroups internals we do not have.
 */
export const LEVEL_MAP: Record<LogLevel, pino.Level> = {
  FINEST: "trace",
  FINER: "trace",
  FINE: "debug",
  CONFIG: "debug",
  INFO: "info",
  WARNING: "warn",
  SEVERE: "error",
};

const LABELS: Record<number, string> = {
  10: "FINEST",
  20: "FINE",
  30: "INFO",
  40: "WARNING",
  50: "SEVERE",
  60: "SEVERE",
};

/** A stream that turns pino's JSON lines into `time LEVEL [component] message` for a terminal. */
function terminalStream(out: NodeJS.WritableStream): DestinationStream {
  return {
    write(line: string) {
      try {
        const o = JSON.parse(line) as {
          time: number;
          level: number;
          msg?: string;
          component?: string;
          reason?: string;
        };
        const t = new Date(o.time).toISOString().slice(11, 23);
        const extra = o.reason && o.reason !== o.msg ? ` (${o.reason})` : "";
        out.write(
          `${t} ${(LABELS[o.level] ?? "INFO").padEnd(7)} ${o.component ? `[${o.component}] ` : ""}${o.msg ?? ""}${extra}\n`,
        );
      } catch {
        out.write(line);
      }
    },
  };
}

/** What a log line needs from the failover engine's state (a FailoverState fits). */
export interface LogStateSource {
  readonly role: string | null;
  readonly view: { readonly epoch: number } | null;
}

/**
 * Before the engine has a role (the start-up checks have not decided it yet, or the engine does
 * not exist yet) lines say `starting`: a field that is always there keeps log queries simple.
 */
export const ROLE_STARTING = "starting";

/**
 * The fields every line carries besides `cluster` and `node`: the role and the view epoch as
 * they are when the line is written, read from the engine on each line (a decision line
 * therefore shows the role it decided; its `from` keeps the old one). `epoch` is null until the
 * engine has seen a view.
 */
export function stateFields(state: LogStateSource | undefined): { role: string; epoch: number | null } {
  return { role: state?.role ?? ROLE_STARTING, epoch: state?.view?.epoch ?? null };
}

/**
 * A pino logger whose lines carry `cluster` and `node` (fixed bindings) and `role` and `epoch`
 * (a mixin reading `state()` on each line). Fields a call passes itself win over the mixin's:
 * a membership line about a newer view keeps its own `epoch`.
 */
export function contextLogger(
  opts: { cluster: string; node: string; state: () => LogStateSource | undefined },
  stream: DestinationStream,
): Logger {
  return pino(
    {
      level: "trace",
      base: { pid: process.pid, cluster: opts.cluster, node: opts.node },
      mixin: () => stateFields(opts.state()),
    },
    stream,
  );
}

/** The agent's loggers: `efm` for the agent, `jgroups` for membership, each at its own level. */
export interface AgentLoggers {
  efm: Logger;
  jgroups: Logger;
  startup: Logger;
  /**
   * From now on read `role` and `epoch` from this engine state. The loggers exist before the
   * engine (start-up is logged while it is built), so they are told where to look once it runs.
   */
  follow(state: () => LogStateSource): void;
  /** Flush file streams (on exit). */
  flush(): void;
}

/**
 * Open `<log.dir>/<cluster>.log` and `startup-<cluster>.log` as JSON lines; with `tty`, also
 * print readable lines there. Levels come from `efm.loglevel` and `jgroups.loglevel`. Every line
 * of all three carries `cluster`, `node`, `role` and `epoch` (see contextLogger).
 */
export function createLoggers(opts: {
  cluster: string;
  /** This agent's address as members name it (`bind.address`, host:port). */
  node: string;
  logFile: string;
  startupFile: string;
  efmLevel: LogLevel;
  jgroupsLevel: LogLevel;
  tty?: NodeJS.WritableStream;
}): AgentLoggers {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const file = pino.destination({ dest: opts.logFile, mkdir: true, sync: true });
  const startupFile = pino.destination({ dest: opts.startupFile, mkdir: true, sync: true });
  const streams = (extra: DestinationStream[]) =>
    pino.multistream([
      { level: "trace", stream: file },
      ...extra.map((stream) => ({ level: "trace" as const, stream })),
      ...(opts.tty ? [{ level: "trace" as const, stream: terminalStream(opts.tty) }] : []),
    ]);
  let source: (() => LogStateSource) | undefined;
  const context = { cluster: opts.cluster, node: opts.node, state: () => source?.() };
  const base = contextLogger(context, streams([]));
  const startupBase = contextLogger(context, streams([startupFile]));
  const efm = base.child({ component: "efm" }, { level: LEVEL_MAP[opts.efmLevel] });
  const jgroups = base.child({ component: "jgroups" }, { level: LEVEL_MAP[opts.jgroupsLevel] });
  const startup = startupBase.child({ component: "startup" }, { level: LEVEL_MAP[opts.efmLevel] });
  return {
    efm,
    jgroups,
    startup,
    follow: (state) => {
      source = state;
    },
    flush: () => {
      file.flushSync();
      startupFile.flushSync();
    },
  };
}
