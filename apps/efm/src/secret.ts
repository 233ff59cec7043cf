import { AgentError, initClusterSecret, secretPath } from "@efm/agent";
import type { Io, Outcome } from "./encrypt.ts";

/** `efm init-secret <cluster>`: write a random cluster secret next to the properties file. */
export function runInitSecret(
  dir: string,
  cluster: string,
  opts: { replace?: boolean },
  io: Pick<Io, "output">,
): Outcome {
  if (!/^[A-Za-z0-9._-]+$/.test(cluster)) {
    io.output.write(
      `cluster name ${JSON.stringify(cluster)} may only hold letters, digits, '.', '_' and '-'\n`,
    );
    return 1;
  }
  const path = secretPath(dir, cluster);
  try {
    const { owner } = initClusterSecret(path, opts.replace === true);
    io.output.write(
      `Wrote a new cluster secret to ${path} (mode 0600, owner ${owner}).\n` +
        `Copy it to ${path} on every node of cluster ${cluster} (same owner and mode), then restart every agent:\n` +
        `agents with different secrets (or one with and one without) cannot talk to each other.\n`,
    );
    return 0;
  } catch (err) {
    if (!(err instanceof AgentError) && (err as NodeJS.ErrnoException).code === undefined) throw err;
    io.output.write(`${(err as Error).message}\n`);
    return 1;
  }
}
