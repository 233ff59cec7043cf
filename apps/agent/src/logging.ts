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

/** The agent's loggers: `efm` for the agent, `jgroups` for membership, each at its own level. */
export interface AgentLoggers {
  efm: Logger;
  jgroups: Logger;
  startup: Logger;
  /** Flush file streams (on exit). */
  flush(): void;
}

/**
 * Open `<log.dir>/<cluster>.log` and `startup-<cluster>.log` as JSON lines; with `tty`, also
 * print readable lines there. Levels come from `efm.loglevel` and `jgroups.loglevel`.
 */
export function createLoggers(opts: {
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
  const base = pino({ level: "trace", base: { pid: process.pid } }, streams([]));
  const startupBase = pino({ level: "trace", base: { pid: process.pid } }, streams([startupFile]));
  const efm = base.child({ component: "efm" }, { level: LEVEL_MAP[opts.efmLevel] });
  const jgroups = base.child({ component: "jgroups" }, { level: LEVEL_MAP[opts.jgroupsLevel] });
  const startup = startupBase.child({ component: "startup" }, { level: LEVEL_MAP[opts.efmLevel] });
  return {
    efm,
    jgroups,
    startup,
    flush: () => {
      file.flushSync();
      startupFile.flushSync();
    },
  };
}
