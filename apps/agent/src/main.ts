import { execFile, spawn } from "node:child_process";
import { closeSync, writeSync } from "node:fs";
import { CLUSTER_NAME } from "@efm/properties-parser";
import { Command } from "commander";
import { startAgent } from "./agent.ts";
import { AgentError } from "./errors.ts";
import { packageVersion } from "./version.ts";

/** The file descriptor a `start --wait` parent reads the child's readiness from. */
const READY_FD_ENV = "EFM_READY_FD";

/** Tell whoever waits for this start (systemd, a `--wait` parent) one line; never throws. */
function tellWaiter(line: string): void {
  const fd = Number(process.env[READY_FD_ENV]);
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    writeSync(fd, `${line}\n`);
    closeSync(fd);
  } catch {
    // The parent is gone: nobody waits any more.
  }
  delete process.env[READY_FD_ENV];
}

/** systemd `Type=notify` (with NotifyAccess=all): report readiness for the agent's own pid. */
function notifySystemd(): void {
  if (!process.env.NOTIFY_SOCKET) return;
  execFile("systemd-notify", ["--ready", `--pid=${process.pid}`], (err) => {
    if (err) process.stderr.write(`efm-agent: systemd-notify --ready failed: ${err.message}\n`);
  });
}

/**
 * `start --wait`: run the agent as a detached child and return once it is ready (exit 0) or
 * has exited during start-up (exit 1, with its reason), so scripts can chain on a started agent.
 */
function startAndWait(cluster: string, configDir: string | undefined, bootstrap: boolean): Promise<number> {
  const script = process.argv[1] ?? "";
  const child = spawn(
    process.execPath,
    [
      script,
      "start",
      cluster,
      ...(configDir ? ["--config-dir", configDir] : []),
      ...(bootstrap ? ["--bootstrap"] : []),
    ],
    {
      detached: true,
      stdio: ["ignore", "ignore", "ignore", "pipe"],
      env: { ...process.env, [READY_FD_ENV]: "3" },
    },
  );
  return new Promise((resolve) => {
    let said = "";
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.on("data", (chunk: Buffer) => {
      said += chunk.toString("utf8");
      if (said.startsWith("ready\n")) {
        process.stdout.write(`efm-agent: cluster ${cluster} is running (pid ${child.pid})\n`);
        child.unref();
        (pipe as unknown as { destroy(): void }).destroy();
        resolve(0);
      }
    });
    pipe.on("error", () => {});
    // "close", not "exit": the pipe is drained by then, so a failure's reason is never lost.
    child.on("close", (code, signal) => {
      if (said.startsWith("ready\n")) return;
      const why = said.replace(/^failed /, "").trim();
      process.stderr.write(
        why !== ""
          ? `${why}\n`
          : `efm-agent: the agent for cluster ${cluster} exited during start-up (${signal ?? `exit code ${code}`}); see startup-${cluster}.log\n`,
      );
      resolve(1);
    });
  });
}

/**
 * The `efm-agent` program. Built apart from `main` so that the man page generator and its test
 * read the same definitions that `--help` prints.
 */
export function buildProgram(): Command {
  const program = new Command("efm-agent")
    .description("The failover manager agent: joins the cluster and watches the local database.")
    .version(`efm-agent ${packageVersion()}`, "-V, --version", "print the version and exit")
    .showHelpAfterError();
  program
    .command("start")
    .argument("<cluster>", "cluster name: reads <config-dir>/<cluster>.properties and <cluster>.nodes")
    .option("--config-dir <dir>", "directory of the cluster's files (env EFM_CONFIG_DIR)")
    .option(
      "--bootstrap",
      "found a new cluster if none answers, even when the local database is not a primary (only an agent without saved membership state; the primary's agent does this by itself)",
    )
    .option(
      "--wait",
      "run in the background and return once the agent has joined the cluster and passed its start-up checks; exit 1 with the reason if it stops during start-up",
    )
    .description("run the agent in the foreground until it is stopped (SIGTERM leaves the cluster cleanly)")
    .action(async (cluster: string, opts: { configDir?: string; wait?: boolean; bootstrap?: boolean }) => {
      // The name becomes file names (properties, logs, lock, state) and the privileged helpers'
      // argument: "../acctg" read a file outside the config directory and made a "startup-.."
      // folder in the log directory. Refuse what the helpers would refuse, before any file.
      if (!CLUSTER_NAME.test(cluster)) {
        process.stderr.write(
          `efm-agent: ${JSON.stringify(cluster)} is not a valid cluster name: use up to 64 letters, digits, _ . - (starting with a letter, digit or _)\n`,
        );
        process.exitCode = 1;
        return;
      }
      if (opts.wait) {
        process.exitCode = await startAndWait(cluster, opts.configDir, opts.bootstrap === true);
        return;
      }
      const configDir = opts.configDir ?? process.env.EFM_CONFIG_DIR ?? "/etc/efm";
      try {
        const agent = await startAgent({
          cluster,
          configDir,
          env: process.env,
          ...(opts.bootstrap ? { bootstrap: true } : {}),
          ...(process.stdout.isTTY || process.env.EFM_LOG_STDOUT ? { tty: process.stdout } : {}),
        });
        for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => agent.shutdown());
        void agent.ready.then(() => {
          notifySystemd();
          tellWaiter("ready");
        });
        process.exitCode = await agent.done;
        const failure = agent.startFailure();
        if (failure !== null) {
          const line = `efm-agent: cluster ${cluster} exited during start-up: ${failure}`;
          process.stderr.write(`${line}\n`);
          tellWaiter(`failed ${line}`);
        }
        // Anything still pending (sockets closing) must not keep a stopped agent alive.
        setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
      } catch (err) {
        // The reason, never a stack: the operator acts on the message (the logs keep the rest).
        const msg =
          err instanceof AgentError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
        const text = `efm-agent: cannot start cluster ${cluster}:\n${msg}`;
        process.stderr.write(`${text}\n`);
        tellWaiter(`failed ${text}`);
        process.exit(1);
      }
    });
  return program;
}

/** Entry point of `bin/efm-agent start <cluster> [--config-dir DIR] [--wait]`. */
export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
