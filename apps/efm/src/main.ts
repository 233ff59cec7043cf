import { CLUSTER_NAME } from "@efm/properties-parser";
import { Command, CommanderError } from "commander";
import { runClusterStatus, runNodeStatus, runPrivileged, runPromote, runSwitchover } from "./admin.ts";
import { runDecisionTable } from "./decision-table.ts";
import { type Io, runEncrypt } from "./encrypt.ts";
import { configDir } from "./paths.ts";
import { runPropCheck } from "./prop-check.ts";
import { runInitSecret } from "./secret.ts";
import { packageVersion } from "./version.ts";

/** Build the `efm` program; actions resolve to an exit status through `done`. */
export function buildProgram(io: Io, done: (status: number) => void): Command {
  const program = new Command("efm")
    .description("Manage a failover manager cluster through the local agent.")
    .version(`efm ${packageVersion()}`, "-V, --version", "print the version and exit")
    .option(
      "--config-dir <dir>",
      "directory of <cluster>.properties and <cluster>.nodes (env EFM_CONFIG_DIR)",
      undefined,
    )
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.output.write(s) });
  const dir = () => configDir(program.opts<{ configDir?: string }>().configDir, io.env);
  // The cluster name becomes a file name (<dir>/<cluster>.properties) and the privileged helpers'
  // argument: refuse one they would refuse (or one that walks out of the directory, "../x")
  // before reading any file or asking the agent.
  program.hook("preAction", (_program, action) => {
    const first = action.registeredArguments[0];
    const cluster = action.processedArgs[0];
    if (first?.name() === "cluster" && typeof cluster === "string" && !CLUSTER_NAME.test(cluster)) {
      io.output.write(
        `${JSON.stringify(cluster)} is not a valid cluster name: use up to 64 letters, digits, _ . - (starting with a letter, digit or _)\n`,
      );
      throw new CommanderError(1, "efm.invalidClusterName", "invalid cluster name");
    }
  });
  const run = (f: () => number | Promise<number>) => async () => done(await f());

  program
    .command("add-node")
    .argument("<cluster>", "cluster name")
    .argument("<address>", "IP address of the node allowed to join")
    .argument("[priority]", "failover priority of a standby: 1 is promoted first")
    .description("allow a node to join the cluster, optionally with its standby priority")
    .action((cluster: string, address: string, priority: string | undefined) =>
      run(() => {
        const p = priority === undefined ? undefined : parsePriority(priority, io);
        if (p === null) return 1;
        return runPrivileged(
          dir(),
          cluster,
          { command: "add-node", address, ...(p ? { priority: p } : {}) },
          io,
        );
      })(),
    );
  program
    .command("allow-node")
    .argument("<cluster>", "cluster name")
    .argument("<address>", "IP address of the node allowed to join")
    .description("allow a node to join the cluster (the EFM 3.x+ name of add-node without a priority)")
    .action((cluster: string, address: string) =>
      run(() => runPrivileged(dir(), cluster, { command: "add-node", address }, io))(),
    );
  program
    .command("cluster-status")
    .argument("<cluster>", "cluster name")
    .description("show the status of every node, database and the promotion readiness")
    .action((cluster: string) => run(() => runClusterStatus(dir(), cluster, false, io))());
  program
    .command("cluster-status-json")
    .argument("<cluster>", "cluster name")
    .description("the cluster status as JSON")
    .action((cluster: string) => run(() => runClusterStatus(dir(), cluster, true, io))());
  program
    .command("decision-table")
    .allowExcessArguments(false)
    .option("--dot", "print a Graphviz digraph (states as nodes, rows as labelled edges) instead")
    .description("print the failover decision table every agent runs (needs no cluster and no agent)")
    .action((opts: { dot?: boolean }) => run(() => runDecisionTable(opts, io))());
  program
    .command("disallow-node")
    .argument("<cluster>", "cluster name")
    .argument("<address>", "IP address of the node")
    .description(
      "remove a node from the allowed host list, and so from the failover priority list (the EFM 3.x+ name of remove-node)",
    )
    .action((cluster: string, address: string) =>
      run(() => runPrivileged(dir(), cluster, { command: "remove-node", address }, io))(),
    );
  program
    .command("encrypt")
    .argument("<cluster>", "cluster name")
    .option("--from-env", "read the password from EFMPASS and print only the encrypted value")
    .description("encrypt the database password for db.password.encrypted")
    .action((cluster: string, opts: { fromEnv?: boolean }) => run(() => runEncrypt(cluster, opts, io))());
  program
    .command("init-secret")
    .argument("<cluster>", "cluster name")
    .option("--replace", "replace an existing secret (every node then needs the new file)")
    .description("write a random cluster secret (<cluster>.secret, mode 0600) that keys agent traffic")
    .action((cluster: string, opts: { replace?: boolean }) =>
      run(() => runInitSecret(dir(), cluster, opts, io))(),
    );
  program
    .command("prop-check")
    .argument("<cluster>", "cluster name")
    .description("validate the cluster's properties and members files and summarise them")
    .action((cluster: string) => run(() => runPropCheck(dir(), cluster, io))());
  program
    .command("promote")
    .argument("<cluster>", "cluster name")
    .option("--force", "promote even when no standby is up to date with the master")
    .option(
      "--switchover",
      "hand the master role to a standby without losing a write; the old master follows it as a standby (also -switchover)",
    )
    .option(
      "--to <address>",
      "with --switchover: the standby to hand it to (also -sourcenode); default: the first of the priority list, then the highest WAL position",
    )
    .description("switch the master role to the best standby (manual failover), or --switchover")
    .action((cluster: string, opts: { force?: boolean; switchover?: boolean; to?: string }) =>
      run(() => {
        if (opts.switchover !== true) {
          if (opts.to !== undefined) {
            io.output.write("--to (-sourcenode) names the target of a switchover: add --switchover\n");
            return 1;
          }
          return runPromote(dir(), cluster, opts.force === true, io);
        }
        if (opts.force === true) {
          io.output.write("--force does not apply to --switchover: a switchover never loses a write\n");
          return 1;
        }
        return runSwitchover(dir(), cluster, opts.to, io);
      })(),
    );
  program
    .command("remove-node")
    .argument("<cluster>", "cluster name")
    .argument("<address>", "IP address of the node")
    .description("remove a node from the allowed host list and the failover priority list")
    .action((cluster: string, address: string) =>
      run(() => runPrivileged(dir(), cluster, { command: "remove-node", address }, io))(),
    );
  program
    .command("resume")
    .argument("<cluster>", "cluster name")
    .description("resume monitoring the local database after it was stopped or failed")
    .action((cluster: string) => run(() => runPrivileged(dir(), cluster, { command: "resume" }, io))());
  program
    .command("stop-cluster")
    .argument("<cluster>", "cluster name")
    .description("stop the agents on every node; databases keep running without failover protection")
    .action((cluster: string) => run(() => runPrivileged(dir(), cluster, { command: "stop-cluster" }, io))());
  program
    .command("node-status-json")
    .argument("<cluster>", "cluster name")
    .description("the local node's status as JSON; exit 0 when healthy")
    .action((cluster: string) => run(() => runNodeStatus(dir(), cluster, io))());
  program
    .command("set-priority")
    .argument("<cluster>", "cluster name")
    .argument("<address>", "IP address of a standby")
    .argument("<priority>", "1 is promoted first")
    .description("move a standby in the failover priority list")
    .action((cluster: string, address: string, priority: string) =>
      run(() => {
        const p = parsePriority(priority, io);
        if (p === null) return 1;
        return runPrivileged(dir(), cluster, { command: "set-priority", address, priority: p }, io);
      })(),
    );
  return program;
}

/** A priority is a whole number from 1 (promoted first); null after printing why not. */
function parsePriority(text: string, io: Io): number | null {
  if (/^\d{1,4}$/.test(text) && Number(text) >= 1) return Number(text);
  io.output.write(`priority "${text}" must be a whole number of 1 or more (1 is promoted first)\n`);
  return null;
}

/**
 * EFM 3.x+ writes promote's options with one dash (`efm promote acctg -switchover -sourcenode
 * 10.0.0.2`); commander would read `-switchover` as a bundle of one-letter flags. Both spellings
 * are accepted: the one-dash words become their two-dash options before parsing.
 */
export function normalizeArgs(args: readonly string[]): string[] {
  const words: Readonly<Record<string, string>> = {
    "-switchover": "--switchover",
    "-sourcenode": "--to",
    "--sourcenode": "--to",
  };
  return args.map((a) => words[a] ?? a);
}

/**
 * `efm cluster-status acctg | head` closes the pipe before the report is written: that is the
 * reader's choice, not the command's failure, so it must not end in a stack trace. Any other
 * write error still surfaces.
 */
export function ignoreClosedPipe(stream: NodeJS.WritableStream): void {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE" && err.code !== "ERR_STREAM_DESTROYED") throw err;
  });
}

/** Entry point of `bin/efm`. */
export async function main(argv: string[]): Promise<void> {
  ignoreClosedPipe(process.stdout);
  const io: Io = { input: process.stdin, output: process.stdout, env: process.env };
  let status = 0;
  const program = buildProgram(io, (s) => {
    status = s;
  });
  program.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 1);
  });
  try {
    await program.parseAsync(normalizeArgs(argv));
  } catch (err) {
    // A check before the action (the cluster name) has already said why.
    if (!(err instanceof CommanderError)) throw err;
    status = err.exitCode;
  }
  process.exitCode = status;
}
