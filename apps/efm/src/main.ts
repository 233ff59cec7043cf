import { Command } from "commander";
import { type Io, runEncrypt } from "./encrypt.ts";
import { configDir } from "./paths.ts";
import { runPropCheck } from "./prop-check.ts";

/** Build the `efm` program; actions resolve to an exit status through `done`. */
export function buildProgram(io: Io, done: (status: number) => void): Command {
  const program = new Command("efm")
    .description("Manage a failover manager cluster through the local agent.")
    .option(
      "--config-dir <dir>",
      "directory of <cluster>.properties and <cluster>.nodes (env EFM_CONFIG_DIR)",
      undefined,
    )
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.output.write(s) });
  const dir = () => configDir(program.opts<{ configDir?: string }>().configDir, io.env);
  const run = (f: () => number | Promise<number>) => async () => done(await f());

  program
    .command("add-node")
    .argument("<cluster>", "cluster name")
    .argument("<address>", "IP address of the node allowed to join")
    .argument("[priority]", "failover priority of a standby: 1 is promoted first")
    .description("allow a node to join the cluster, optionally with its standby priority")
    .action(notYet("add-node", done));
  program
    .command("cluster-status")
    .argument("<cluster>", "cluster name")
    .description("show the status of every node, database and the promotion readiness")
    .action(notYet("cluster-status", done));
  program
    .command("cluster-status-json")
    .argument("<cluster>", "cluster name")
    .description("the cluster status as JSON")
    .action(notYet("cluster-status-json", done));
  program
    .command("encrypt")
    .argument("<cluster>", "cluster name")
    .option("--from-env", "read the password from EFMPASS and print only the encrypted value")
    .description("encrypt the database password for db.password.encrypted")
    .action((cluster: string, opts: { fromEnv?: boolean }) => run(() => runEncrypt(cluster, opts, io))());
  program
    .command("prop-check")
    .argument("<cluster>", "cluster name")
    .description("validate the cluster's properties and members files and summarise them")
    .action((cluster: string) => run(() => runPropCheck(dir(), cluster, io))());
  program
    .command("promote")
    .argument("<cluster>", "cluster name")
    .option("--force", "promote even when no standby is up to date with the master")
    .description("switch the master role to the best standby (manual failover)")
    .action(notYet("promote", done));
  program
    .command("remove-node")
    .argument("<cluster>", "cluster name")
    .argument("<address>", "IP address of the node")
    .description("remove a node from the allowed host list and the failover priority list")
    .action(notYet("remove-node", done));
  program
    .command("resume")
    .argument("<cluster>", "cluster name")
    .description("resume monitoring the local database after it was stopped or failed")
    .action(notYet("resume", done));
  program
    .command("stop-cluster")
    .argument("<cluster>", "cluster name")
    .description("stop the agents on every node; databases keep running without failover protection")
    .action(notYet("stop-cluster", done));
  program
    .command("node-status-json")
    .argument("<cluster>", "cluster name")
    .description("the local node's status as JSON; exit 0 when healthy")
    .action(notYet("node-status-json", done));
  program
    .command("set-priority")
    .argument("<cluster>", "cluster name")
    .argument("<address>", "IP address of a standby")
    .argument("<priority>", "1 is promoted first")
    .description("move a standby in the failover priority list")
    .action(notYet("set-priority", done));
  return program;
}

function notYet(name: string, done: (status: number) => void) {
  return () => {
    process.stderr.write(`efm ${name}: not implemented yet\n`);
    done(2);
  };
}

/** Entry point of `bin/efm`. */
export async function main(argv: string[]): Promise<void> {
  const io: Io = { input: process.stdin, output: process.stdout, env: process.env };
  let status = 0;
  const program = buildProgram(io, (s) => {
    status = s;
  });
  program.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 1);
  });
  await program.parseAsync(argv);
  process.exitCode = status;
}
