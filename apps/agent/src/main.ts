import { Command } from "commander";
import { startAgent } from "./agent.ts";
import { AgentError } from "./errors.ts";
import { packageVersion } from "./version.ts";

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
    .description("run the agent in the foreground until it is stopped (SIGTERM leaves the cluster cleanly)")
    .action(async (cluster: string, opts: { configDir?: string }) => {
      const configDir = opts.configDir ?? process.env.EFM_CONFIG_DIR ?? "/etc/efm";
      try {
        const agent = await startAgent({
          cluster,
          configDir,
          env: process.env,
          ...(process.stdout.isTTY || process.env.EFM_LOG_STDOUT ? { tty: process.stdout } : {}),
        });
        for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => agent.shutdown());
        process.exitCode = await agent.done;
        // Anything still pending (sockets closing) must not keep a stopped agent alive.
        setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
      } catch (err) {
        // The reason, never a stack: the operator acts on the message (the logs keep the rest).
        const msg =
          err instanceof AgentError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
        process.stderr.write(`efm-agent: cannot start cluster ${cluster}:\n${msg}\n`);
        process.exit(1);
      }
    });
  return program;
}

/** Entry point of `bin/efm-agent start <cluster> [--config-dir DIR]`. */
export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
