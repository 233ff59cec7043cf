// efm-address: the root-only VIP helper. sudoers lets the efm user run exactly this program as
// root with a cluster name and a fixed verb. It takes the address, interface and netmask from
// the root-owned <cluster>.properties itself, never from its caller: were they arguments, the
// efm user could remove the host's main address or claim a neighbour's (issue 18).
import {
  formatProblem,
  parseConfig,
  readTrustedProperties,
  trustedConfigDir,
  type VirtualIp,
} from "@efm/properties-parser";
import { isVipError, VipError } from "./errors.ts";
import { assign, release } from "./vip.ts";

/** The verbs of efm-address; the sudoers rule allows exactly these. */
export const ADDRESS_VERBS = ["assign", "release"] as const;

/** One of {@link ADDRESS_VERBS}. */
export type AddressVerb = (typeof ADDRESS_VERBS)[number];

/** The command line, for usage messages and the README. */
export const ADDRESS_USAGE =
  "usage: efm-address <cluster> assign|release\n" +
  "  virtualIp, virtualIp.interface and virtualIp.netmask are read from <cluster>.properties\n" +
  "  (always /etc/efm through sudo), never from the command line\n";

/** The parsed command line: nothing but a cluster name and a verb. */
export interface AddressRequest {
  readonly cluster: string;
  readonly verb: AddressVerb;
}

/**
 * Checks the whole command line: exactly `<cluster> <verb>`. Anything more (an interface, an
 * address, a netmask, as 2.0.3's efm_address took) is refused rather than ignored, so a caller
 * never believes it chose them.
 */
export function parseAddressArgs(argv: readonly string[]): AddressRequest {
  const [cluster, verb, ...rest] = argv;
  if (cluster === undefined || verb === undefined) {
    throw new VipError("USAGE", "expected a cluster name and a verb");
  }
  if (!(ADDRESS_VERBS as readonly string[]).includes(verb)) {
    throw new VipError("USAGE", `unknown verb ${JSON.stringify(verb.slice(0, 40))}: use assign or release`);
  }
  if (rest.length > 0) {
    throw new VipError(
      "USAGE",
      `${verb} takes no further arguments (got ${rest.length}): the interface, address and netmask come from the cluster's properties file`,
    );
  }
  return { cluster, verb: verb as AddressVerb };
}

/**
 * The virtual IP of `cluster` from its trusted properties file in `configDir`: the file and
 * its directory must be writable by nobody but root (or `trustedUid`, the user we already are).
 */
export function readVipFacts(
  configDir: string,
  cluster: string,
  trustedUid: number,
): VirtualIp & { propertiesFile: string } {
  const file = readTrustedProperties(configDir, cluster, trustedUid);
  if (!file.ok) {
    throw new VipError(
      file.kind === "usage" ? "USAGE" : file.kind === "unsafe" ? "PROPERTIES_UNSAFE" : "PROPERTIES_INVALID",
      file.message,
    );
  }
  const r = parseConfig(file.text, file.path, { checkFiles: false });
  if (!r.config || r.errors.length > 0) {
    throw new VipError("PROPERTIES_INVALID", r.errors.map(formatProblem).join("\n"));
  }
  const vip = r.config.virtualIp;
  if (vip === undefined) {
    throw new VipError("PROPERTIES_INVALID", `${file.path}: no virtualIp is configured`);
  }
  return { ...vip, propertiesFile: file.path };
}

/**
 * Runs the command line `argv` (without node and script) with environment `env`; returns the
 * exit code: 0 done, 1 the command failed, 2 refused (usage, unsafe or invalid properties).
 */
export async function main(
  argv: readonly string[],
  err: (text: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  try {
    const { cluster, verb } = parseAddressArgs(argv);
    const vip = readVipFacts(trustedConfigDir(env), cluster, process.geteuid?.() ?? 0);
    if (verb === "assign") {
      const result = await assign(vip.interface, vip.address, String(vip.prefix));
      if (typeof result.gratuitousArp === "object") {
        err(
          `efm-address: warning: ${vip.address} assigned, but gratuitous ARP failed: ${result.gratuitousArp.failed}\n`,
        );
      }
      return 0;
    }
    await release(vip.interface, vip.address);
    return 0;
  } catch (e) {
    const text = `efm-address: ${isVipError(e) ? `${e.code}: ` : ""}${e instanceof Error ? e.message : String(e)}\n`;
    err(isVipError(e, "USAGE") ? `${text}${ADDRESS_USAGE}` : text);
    return isVipError(e) && e.code !== "COMMAND_FAILED" && e.code !== "COMMAND_TIMEOUT" ? 2 : 1;
  }
}
