import { readFileSync } from "node:fs";
import { type Problem, PropertiesError } from "./errors.ts";
import { formatHostPort, type HostPort, parseHostPort } from "./schema.ts";
import { writeFileAtomic } from "./atomic.ts";

/** A member address from the members file, with the line it came from. */
export interface NodeEntry extends HostPort {
  line: number;
}

/**
 * Parse a members file (guide 3.2.2): `address:port` entries separated by any white space,
 * `#` comments to the end of a line. Malformed and repeated entries are reported by line.
 */
export function parseNodes(
  text: string,
  file: string,
): { nodes: NodeEntry[]; errors: Problem[]; warnings: Problem[] } {
  const nodes: NodeEntry[] = [];
  const errors: Problem[] = [];
  const warnings: Problem[] = [];
  const seen = new Map<string, number>();
  text.split(/\r\n|\r|\n/).forEach((raw, i) => {
    const line = i + 1;
    const content = raw.replace(/#.*$/, "");
    for (const token of content.split(/[\s,]+/).filter((t) => t !== "")) {
      const hp = parseHostPort(token);
      if (!hp) {
        errors.push({
          code: "BAD_NODE_ENTRY",
          file,
          line,
          value: token,
          // Name the entry: a line may hold several, and one stray word is two errors on one line.
          message: `${JSON.stringify(token)}: expected <ip-or-host>:<port> with a port from 1 to 65535, for example 10.0.1.8:7800`,
        });
        continue;
      }
      const key = formatHostPort(hp);
      const first = seen.get(key);
      if (first !== undefined) {
        warnings.push({
          code: "BAD_NODE_ENTRY",
          file,
          line,
          value: token,
          message: `${JSON.stringify(token)} is already listed on line ${first}`,
        });
        continue;
      }
      seen.set(key, line);
      nodes.push({ ...hp, line });
    }
  });
  return { nodes, errors, warnings };
}

/** Read a members file; a missing file is an empty list (a first node needs none). */
export function readNodes(path: string): { nodes: NodeEntry[]; errors: Problem[]; warnings: Problem[] } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { nodes: [], errors: [], warnings: [] };
    throw new PropertiesError(
      "UNREADABLE_FILE",
      path,
      `cannot read the members file: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return parseNodes(text, path);
}

/** Print members as the agents write them: one `address:port` a line. */
export function printNodes(nodes: readonly HostPort[]): string {
  const header = "# Cluster members, rewritten by the agents when a node joins or leaves.\n";
  return header + nodes.map((n) => `${formatHostPort(n)}\n`).join("");
}

/** Replace the members file atomically, so a crash leaves the old or the new list, never half. */
export function writeNodes(path: string, nodes: readonly HostPort[]): void {
  writeFileAtomic(path, printNodes(nodes));
}
