import { fileURLToPath } from "node:url";
import { type Family, addressFamily, netmaskToPrefix, normalizeAddress, parseInterface } from "./address.ts";
import { VipError } from "./errors.ts";
import { type ExecResult, exec } from "./exec.ts";

/** Where and how the commands run. */
export interface VipOptions {
  /** Run every command inside this network namespace (`ip netns exec <name>`). */
  readonly netns?: string;
  /** The iproute2 program; default `ip`. */
  readonly ipCommand?: string;
  /** The iputils arping program; default `arping`. */
  readonly arpingCommand?: string;
  /** Gratuitous ARP packets sent after assigning (one per second); default 2, 0 disables. */
  readonly arpCount?: number;
  /** Per-command timeout; default 15 s. */
  readonly timeoutMs?: number;
  /**
   * Given, `assign` does not wait for the gratuitous ARP (arping sends one packet a second and
   * takes about `arpCount` seconds: 2 s by default) once the address is on the device: it returns with `gratuitousArp: "started"`, and this is called with the
   * outcome when arping ends. Through the efm-address program (`helper`) the program itself
   * still waits.
   */
  readonly onAnnounced?: (outcome: "sent" | { readonly failed: string }) => void;
  /**
   * Go through the efm-address program instead of calling `ip` to change addresses: the agent
   * runs as the unprivileged efm user. It runs through `sudo -n --` (directly when we are
   * root) and reads the address, interface and netmask itself from the root-owned
   * `<cluster>.properties`; assign and release then check that what it did is what the caller
   * asked for.
   */
  readonly helper?: AddressHelper;
}

/** How to reach the efm-address program. */
export interface AddressHelper {
  /** The cluster name: with the verb, the program's only arguments. */
  readonly cluster: string;
  /** The program as argv; default {@link defaultAddressCommand}. Under sudo it must match sudoers. */
  readonly command?: readonly string[];
  /**
   * EFM_CONFIG_DIR for a program started directly (we are root: tests, the demo); through
   * sudo it always reads /etc/efm.
   */
  readonly configDir?: string;
}

/** The default efm-address program: the compiled address-cli.js next to this module. */
export function defaultAddressCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  // From src/ (tests, typecheck) use the build output, which must exist.
  const cli = here.endsWith(".ts")
    ? fileURLToPath(new URL("../dist/address-cli.js", import.meta.url))
    : fileURLToPath(new URL("./address-cli.js", import.meta.url));
  return [process.execPath, cli];
}

/** What {@link assign} did. */
export interface AssignResult {
  /** False when the address was already on the device. */
  readonly changed: boolean;
  readonly device: string;
  /** The label given to an IPv4 address (`eth0:1`); undefined for IPv6. */
  readonly label?: string;
  readonly prefix: number;
  /**
   * Whether neighbours were told: "sent", "skipped" (IPv6 or arpCount 0), the failure text, or
   * "started" (with `onAnnounced`, which reports how it ended).
   */
  readonly gratuitousArp: "sent" | "skipped" | "started" | { readonly failed: string };
}

/** One address held by this host, as `ip -j addr` reports it. */
export interface HeldAddress {
  readonly device: string;
  readonly address: string;
  readonly prefix: number;
  readonly family: Family;
  readonly label?: string;
}

/** `argv` as run inside `options.netns` (`ip netns exec <name> ...`), or as given. */
export function wrap(argv: readonly string[], options: VipOptions): string[] {
  if (options.netns === undefined) return [...argv];
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(options.netns)) {
    throw new VipError("USAGE", `"${options.netns}" is not a network namespace name`);
  }
  return [options.ipCommand ?? "ip", "netns", "exec", options.netns, ...argv];
}

async function run(
  argv: readonly string[],
  options: VipOptions,
  env?: NodeJS.ProcessEnv,
): Promise<ExecResult> {
  return exec(wrap(argv, options), options.timeoutMs ?? 15_000, env);
}

async function mustRun(
  argv: readonly string[],
  options: VipOptions,
  env?: NodeJS.ProcessEnv,
): Promise<ExecResult> {
  const result = await run(argv, options, env);
  if (result.code !== 0) {
    throw new VipError(
      "COMMAND_FAILED",
      `${argv.join(" ")} exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  }
  return result;
}

interface IpJsonLink {
  ifname?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number; label?: string }[];
}

/** Every address on this host (or in `options.netns`). */
export async function listAddresses(options: VipOptions = {}): Promise<HeldAddress[]> {
  const { stdout } = await mustRun([options.ipCommand ?? "ip", "-j", "addr", "show"], options);
  let links: IpJsonLink[];
  try {
    links = JSON.parse(stdout) as IpJsonLink[];
  } catch (cause) {
    throw new VipError("COMMAND_FAILED", "ip -j addr show printed something that is not JSON", { cause });
  }
  const held: HeldAddress[] = [];
  for (const link of links) {
    for (const a of link.addr_info ?? []) {
      if (link.ifname === undefined || a.local === undefined || a.prefixlen === undefined) continue;
      if (a.family !== "inet" && a.family !== "inet6") continue;
      held.push({
        device: link.ifname,
        address: normalizeAddress(a.local),
        prefix: a.prefixlen,
        family: a.family,
        ...(a.label === undefined ? {} : { label: a.label }),
      });
    }
  }
  return held;
}

/** True when `ip` is assigned to any interface of this host. */
export async function isHeldLocally(ip: string, options: VipOptions = {}): Promise<boolean> {
  const wanted = normalizeAddress(ip);
  addressFamily(ip);
  return (await listAddresses(options)).some((a) => a.address === wanted);
}

/**
 * Assigns the virtual IP: `ip addr add <ip>/<prefix> brd + dev <device> label <label>`, then a
 * gratuitous ARP (`arping -U`) so neighbours drop the old owner's MAC. `iface` is the
 * guide's `virtualIp.interface`: `eth0:0` gives that label; a plain `eth0` gets the first free
 * `eth0:<n>`. `netmask` is dotted or a prefix length. Assigning an address already on the
 * device only repeats the ARP. With a label named (IPv4), the address is added without reading
 * the device's addresses first.
 */
export async function assign(
  iface: string,
  ip: string,
  netmask: string,
  options: VipOptions = {},
): Promise<AssignResult> {
  const family = addressFamily(ip);
  const prefix = netmaskToPrefix(netmask, family);
  const spec = parseInterface(iface);
  if (options.helper !== undefined) return assignViaProgram(spec, ip, prefix, options.helper, options);
  const ipCmd = options.ipCommand ?? "ip";
  if (family === "inet" && spec.label !== undefined) {
    // The label is named, so nothing needs reading first: add at once, one program fewer before
    // the address answers (a new master's VIP on the failover path). The kernel refuses an
    // address already on the device (any label); only then is the list read, to say so.
    const argv = [
      ipCmd,
      "addr",
      "add",
      `${ip}/${prefix}`,
      "brd",
      "+",
      "dev",
      spec.device,
      "label",
      spec.label,
    ];
    const added = await run(argv, options);
    let label = spec.label;
    if (added.code !== 0) {
      const wanted = normalizeAddress(ip);
      const mine = (await listAddresses(options)).find(
        (a) => a.address === wanted && a.device === spec.device,
      );
      if (mine === undefined) {
        throw new VipError(
          "COMMAND_FAILED",
          `${argv.join(" ")} exited with ${added.code}: ${added.stderr.trim() || added.stdout.trim()}`,
        );
      }
      label = mine.label ?? label;
    }
    const gratuitousArp = await announceOrStart(spec.device, ip, family, options);
    return { changed: added.code === 0, device: spec.device, label, prefix, gratuitousArp };
  }
  const held = await listAddresses(options);
  const mine = held.find((a) => a.address === normalizeAddress(ip) && a.device === spec.device);
  let label = mine?.label ?? spec.label;
  if (mine === undefined) {
    if (family === "inet") {
      label ??= freeLabel(
        spec.device,
        held.filter((a) => a.device === spec.device),
      );
      await mustRun(
        [ipCmd, "addr", "add", `${ip}/${prefix}`, "brd", "+", "dev", spec.device, "label", label],
        options,
      );
    } else {
      // Labels are an IPv4 notion in the kernel; IPv6 addresses have none.
      label = undefined;
      await mustRun([ipCmd, "-6", "addr", "add", `${ip}/${prefix}`, "dev", spec.device], options);
    }
  }
  const gratuitousArp = await announceOrStart(spec.device, ip, family, options);
  return {
    changed: mine === undefined,
    device: spec.device,
    ...(family === "inet" && label !== undefined ? { label } : {}),
    prefix,
    gratuitousArp,
  };
}

/**
 * Runs `efm-address <cluster> <verb>`: through `sudo -n --` unless we are root, with a fixed
 * environment (the program needs nothing else of ours; sudo would drop it anyway).
 */
function runHelper(verb: "assign" | "release", helper: AddressHelper, options: VipOptions) {
  const root = process.geteuid?.() === 0;
  const argv = [...(helper.command ?? defaultAddressCommand()), helper.cluster, verb];
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
    ...(root && helper.configDir !== undefined ? { EFM_CONFIG_DIR: helper.configDir } : {}),
  };
  return mustRun(root ? argv : ["sudo", "-n", "--", ...argv], options, env);
}

async function assignViaProgram(
  spec: { device: string },
  ip: string,
  prefix: number,
  helper: AddressHelper,
  options: VipOptions,
): Promise<AssignResult> {
  const wanted = normalizeAddress(ip);
  const before = (await listAddresses(options)).some((a) => a.address === wanted && a.device === spec.device);
  const result = await runHelper("assign", helper, options);
  const held = (await listAddresses(options)).find((a) => a.address === wanted && a.device === spec.device);
  if (held === undefined) {
    // The program assigned what root's properties file says; the caller read another file.
    throw new VipError(
      "COMMAND_FAILED",
      `efm-address ${helper.cluster} assign succeeded but ${ip} is not on ${spec.device}: it takes the virtual IP from the root-owned ${helper.cluster}.properties (/etc/efm through sudo), which must name the same virtualIp and interface as the agent's`,
    );
  }
  const warning = result.stderr.trim();
  return {
    changed: !before,
    device: spec.device,
    ...(held.label === undefined || held.family !== "inet" ? {} : { label: held.label }),
    prefix,
    gratuitousArp: held.family === "inet6" ? "skipped" : warning === "" ? "sent" : { failed: warning },
  };
}

function freeLabel(device: string, onDevice: readonly HeldAddress[]): string {
  const used = new Set(onDevice.map((a) => a.label));
  for (let n = 0; n < 100; n++) {
    const label = `${device}:${n}`;
    if (label.length > 15) break;
    if (!used.has(label)) return label;
  }
  throw new VipError("INVALID_INTERFACE", `virtualIp.interface: no free alias label on ${device}; name one`);
}

/**
 * The gratuitous ARP, waited for; or, with `onAnnounced`, started and reported there: the address
 * already answers, and neighbours holding the old MAC hear the first packet at once, so nothing
 * after the assignment need wait for the rest (a new master's post-promotion steps).
 */
async function announceOrStart(
  device: string,
  ip: string,
  family: Family,
  options: VipOptions,
): Promise<AssignResult["gratuitousArp"]> {
  // IPv6 neighbours learn through neighbour discovery; arping speaks ARP only.
  if (family === "inet6" || (options.arpCount ?? 2) === 0) return "skipped";
  const report = options.onAnnounced;
  if (report === undefined) return announce(device, ip, options);
  void announce(device, ip, options).then(report);
  return "started";
}

async function announce(
  device: string,
  ip: string,
  options: VipOptions,
): Promise<"sent" | { failed: string }> {
  const count = options.arpCount ?? 2;
  try {
    const result = await run(
      [options.arpingCommand ?? "arping", "-q", "-U", "-c", String(count), "-I", device, ip],
      options,
    );
    // iputils arping -U exits 1 because no replies are expected to unsolicited ARP.
    if (result.code === 0 || result.code === 1) return "sent";
    return { failed: `arping exited with ${result.code}: ${result.stderr.trim()}` };
  } catch (e) {
    // The address is assigned; a missing arping must not turn that into a failure.
    return { failed: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * Releases the virtual IP from the device of `iface` (`ip addr del <ip>/<prefix> dev
 * <device>`). Returns false when the address was not there, which is not an error: a
 * release must be safe to repeat.
 */
export async function release(iface: string, ip: string, options: VipOptions = {}): Promise<boolean> {
  addressFamily(ip);
  const spec = parseInterface(iface);
  const wanted = normalizeAddress(ip);
  const held = (await listAddresses(options)).find((a) => a.address === wanted && a.device === spec.device);
  if (held === undefined) return false;
  if (options.helper !== undefined) {
    await runHelper("release", options.helper, options);
    if ((await listAddresses(options)).some((a) => a.address === wanted && a.device === spec.device)) {
      throw new VipError(
        "COMMAND_FAILED",
        `efm-address ${options.helper.cluster} release succeeded but ${ip} is still on ${spec.device}: root's ${options.helper.cluster}.properties names another virtualIp or interface than the agent's`,
      );
    }
    return true;
  }
  await mustRun(
    [options.ipCommand ?? "ip", "addr", "del", `${ip}/${held.prefix}`, "dev", spec.device],
    options,
  );
  return true;
}
