import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import {
  type EfmConfig,
  formatHostPort,
  formatProblem,
  type Problem,
  PropertiesError,
  readConfig,
  readNodes,
} from "@efm/properties-parser";
import { checkPropertiesMode, noSecretWarning, readClusterSecret, secretPath } from "@efm/agent";
import type { Io, Outcome } from "./encrypt.ts";
import { clusterFiles } from "./paths.ts";

/** Load and validate a cluster's properties and members files; problems are printed. */
export function loadCluster(
  dir: string,
  cluster: string,
  io: Pick<Io, "output">,
): { config: EfmConfig | null; members: string[]; errors: Problem[] } {
  const files = clusterFiles(dir, cluster);
  let errors: Problem[] = [];
  let warnings: Problem[] = [];
  let config: EfmConfig | null = null;
  let members: string[] = [];
  try {
    // Facts only the node can prove are warnings here: the files are often checked elsewhere.
    const r = readConfig(files.properties, { hostFacts: "warnings" });
    config = r.config;
    errors = r.errors;
    warnings = r.warnings;
    const n = readNodes(files.nodes);
    errors.push(...n.errors);
    warnings.push(...n.warnings);
    members = n.nodes.map(formatHostPort);
  } catch (err) {
    if (!(err instanceof PropertiesError)) throw err;
    errors.push({ code: err.code, file: err.file, message: err.message.replace(`${err.file}: `, "") });
  }
  for (const p of errors) io.output.write(`ERROR: ${formatProblem(p)}\n`);
  for (const p of warnings) io.output.write(`WARNING: ${formatProblem(p)}\n`);
  return { config: errors.length === 0 ? config : null, members, errors };
}

/** `efm prop-check <cluster>` (guide 5.3): validate the files and print the summary. */
export function runPropCheck(dir: string, cluster: string, io: Pick<Io, "output">): Outcome {
  const { config, members, errors } = loadCluster(dir, cluster, io);
  // What protects the password and agent traffic: the properties file's mode and the cluster
  // secret. Errors join the others; warnings follow the summary.
  const files = clusterFiles(dir, cluster);
  const security: string[] = [];
  const modes = checkPropertiesMode(files.properties);
  if (modes.warning) security.push(modes.warning);
  let securityErrors = 0;
  if (modes.error) {
    io.output.write(`ERROR: ${modes.error}\n`);
    securityErrors++;
  }
  const secret = secretPath(dir, cluster);
  try {
    if (readClusterSecret(secret) === null) security.push(noSecretWarning(secret, cluster));
  } catch (err) {
    io.output.write(`ERROR: ${(err as Error).message}\n`);
    securityErrors++;
  }
  if (!config || securityErrors > 0) {
    const n = errors.length + securityErrors;
    io.output.write(`${n} error(s) in the files of cluster ${cluster}.\n`);
    return 1;
  }
  const self = formatHostPort(config.bindAddress);
  const agents = [self, ...members.filter((m) => m !== self)];
  const out = [
    `Agents: ${agents.join(" ")}`,
    `Binding address: ${config.bindAddress.host}`,
    `I am witness node: ${config.isWitness}`,
    `Cluster name: ${cluster}`,
    `User email: ${config.userEmail.join(",")}`,
    `VIP: ${config.virtualIp?.address ?? ""}`,
    `Automatic failover set to: ${config.autoFailover}`,
    `Network adapters: ${networkAdapterLines().join("\n")}`,
  ];
  io.output.write(`${out.join("\n")}\n`);
  for (const w of security) io.output.write(`WARNING: ${w}\n`);
  return 0;
}

/**
 * Adapter names, each followed by its addresses (IPv6 first, Java's unabbreviated form). Java
 * scopes every IPv6 address of an interface with the interface's index (`::1` on lo is
 * `0:0:0:0:0:0:0:1%1`); Node gives a scope only to link-local ones, so the index is read from sysfs.
 */
export function networkAdapterLines(
  adapters: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string[] {
  const lines: string[] = [];
  for (const [name, addrs] of Object.entries(adapters)) {
    const index = interfaceIndex(name);
    lines.push(name);
    const sorted = [...(addrs ?? [])].sort((a, b) =>
      a.family === b.family ? 0 : a.family === "IPv6" ? -1 : 1,
    );
    for (const a of sorted) {
      lines.push(a.family === "IPv6" ? `${expandIpv6(a.address)}%${index ?? a.scopeid ?? 0}` : a.address);
    }
  }
  return lines;
}

/** The kernel's index of a network interface, or null where sysfs does not show it. */
export function interfaceIndex(name: string): number | null {
  try {
    const n = Number(readFileSync(`/sys/class/net/${name}/ifindex`, "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** `fe80::1` -> `fe80:0:0:0:0:0:0:1`, the way Java prints IPv6 addresses. */
export function expandIpv6(addr: string): string {
  const bare = addr.replace(/%.*$/, "");
  const [head = "", tail] = bare.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.map((g) => Number.parseInt(g, 16).toString(16)).join(":");
}
