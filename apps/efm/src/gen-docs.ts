import { mkdirSync, writeFileSync } from "node:fs";
import { PassThrough } from "node:stream";
import { buildProgram as agentProgram } from "@efm/agent/main";
import { buildProgram } from "./main.ts";
import { type ManExtra, renderCompletion, renderManPage } from "./manual.ts";

const EFM_EXTRA: ManExtra = {
  section: 1,
  manual: "User Commands",
  sections: [
    {
      title: "Files",
      paragraphs: [
        "/etc/efm/<cluster>.properties and /etc/efm/<cluster>.nodes: the cluster's properties and members files; the base name of the properties file is the cluster's name.",
        "The local agent answers on 127.0.0.1:<admin.port>; privileged commands prove they run on the same host with the token file the agent writes in its run directory.",
      ],
    },
    {
      title: "Environment",
      paragraphs: [
        "EFM_CONFIG_DIR: where the cluster files are when --config-dir is not given (default /etc/efm).",
        "EFMPASS: the password that efm encrypt --from-env encrypts.",
      ],
    },
    {
      title: "Exit status",
      paragraphs: [
        "0 when the command succeeded; cluster-status and cluster-status-json exit 0 only when every agent and database is up and a standby is in sync; node-status-json exits 0 when the local node is healthy; 1 otherwise.",
      ],
    },
  ],
  seeAlso: ["efm-agent(8)"],
};

const AGENT_EXTRA: ManExtra = {
  section: 8,
  manual: "System Administration",
  sections: [
    {
      title: "Files",
      paragraphs: [
        "/etc/efm/<cluster>.properties and /etc/efm/<cluster>.nodes: read at start; the members file is rewritten as agents join and leave.",
        "/var/lock/efm/<cluster>.lock (lock.dir), /var/log/efm/<cluster>.log and startup-<cluster>.log (log.dir), /run/efm (run.dir), /var/lib/efm (state.dir).",
      ],
    },
    {
      title: "Environment",
      paragraphs: [
        "EFM_CONFIG_DIR: where the cluster files are when --config-dir is not given (default /etc/efm).",
        "EFM_LOCK_DIR, EFM_LOG_DIR, EFM_RUN_DIR, EFM_STATE_DIR: override the folders above when the properties do not set them.",
      ],
    },
    {
      title: "HTTP",
      paragraphs: [
        "With http.bind.address set, the agent also serves read-only /health, /primary (200 only on the master holding its lease whose database is out of recovery), /replica (?lag=<bytes>), /status and /metrics (Prometheus) on that address.",
      ],
    },
    {
      title: "Signals",
      paragraphs: ["SIGTERM and SIGINT: leave the cluster cleanly and exit."],
    },
  ],
  seeAlso: ["efm(1)"],
};

/** The three generated files, keyed by their path under apps/efm. */
export function generatedDocs(): Record<string, string> {
  const io = { input: new PassThrough(), output: new PassThrough(), env: {} };
  const efm = buildProgram(io, () => {});
  const agent = agentProgram();
  return {
    "man/efm.1": renderManPage(efm, EFM_EXTRA),
    "man/efm-agent.8": renderManPage(agent, AGENT_EXTRA),
    "completion/efm.bash": renderCompletion(efm, agent),
  };
}

/** `pnpm --filter @efm/cli gen-docs`: rewrite the generated files after changing a command. */
export function writeDocs(root: string): void {
  for (const [path, text] of Object.entries(generatedDocs())) {
    const file = `${root}/${path}`;
    mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true });
    writeFileSync(file, text);
  }
}
