import { isIPv4, isIPv6 } from "node:net";
import { VipError } from "./errors.ts";

/** An address family as `ip` names it. */
export type Family = "inet" | "inet6";

/** The family of `ip`, or a typed error naming the value. */
export function addressFamily(ip: string, what = "virtualIp"): Family {
  if (isIPv4(ip)) return "inet";
  // Zone ids (fe80::1%eth0) are not something a VIP can carry.
  if (isIPv6(ip) && !ip.includes("%")) return "inet6";
  throw new VipError("INVALID_ADDRESS", `${what}: "${ip}" is not an IPv4 or IPv6 address`);
}

/** The 16 bytes of an IPv6 address, for comparing spellings (::1 vs 0:0::1). */
function ipv6Bytes(ip: string): number[] {
  let text = ip.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left, right] = text.includes("::") ? text.split("::") : [text, undefined];
  const l = left === "" || left === undefined ? [] : left.split(":");
  const r = right === undefined || right === "" ? [] : right.split(":");
  const groups = right === undefined ? l : [...l, ...Array(8 - l.length - r.length).fill("0"), ...r];
  return groups.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/** Canonical text of an address, so two spellings of one IPv6 address compare equal. */
export function normalizeAddress(ip: string): string {
  if (addressFamily(ip) === "inet") return ip;
  const b = ipv6Bytes(ip);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(":");
}

/**
 * The prefix length of a netmask: dotted IPv4 (`255.255.255.0`), or a prefix length written
 * as `24` or `/24`. A non-contiguous mask such as `255.255.0.255` is an error.
 */
export function netmaskToPrefix(netmask: string, family: Family = "inet"): number {
  const max = family === "inet" ? 32 : 128;
  const text = netmask.trim();
  const prefix = /^\/?(\d{1,3})$/.exec(text);
  if (prefix !== null) {
    const n = Number(prefix[1]);
    if (n > max) {
      throw new VipError("INVALID_NETMASK", `virtualIp.netmask: prefix length ${n} is larger than ${max}`);
    }
    return n;
  }
  if (family === "inet" && isIPv4(text)) {
    const value = text.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
    // Contiguous: ones then zeros, i.e. the inverted mask plus one is a power of two.
    const inverted = 0xffffffff - value;
    if ((inverted & (inverted + 1)) !== 0) {
      throw new VipError("INVALID_NETMASK", `virtualIp.netmask: ${text} is not a contiguous netmask`);
    }
    return 32 - Math.log2(inverted + 1);
  }
  if (family === "inet6" && isIPv6(text)) {
    const bits = ipv6Bytes(text)
      .map((byte) => byte.toString(2).padStart(8, "0"))
      .join("");
    if (!/^1*0*$/.test(bits)) {
      throw new VipError("INVALID_NETMASK", `virtualIp.netmask: ${text} is not a contiguous netmask`);
    }
    return bits.indexOf("0") === -1 ? 128 : bits.indexOf("0");
  }
  throw new VipError("INVALID_NETMASK", `virtualIp.netmask: "${netmask}" is not a netmask or prefix length`);
}

/** The dotted IPv4 netmask of a prefix length (24 -> 255.255.255.0). */
export function prefixToNetmask(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new VipError("INVALID_NETMASK", `prefix length ${prefix} is not between 0 and 32`);
  }
  const value = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join(".");
}

/** A parsed `virtualIp.interface`: the device and, for `eth0:1`, the alias label. */
export interface InterfaceSpec {
  readonly device: string;
  /** The full label (`eth0:1`) when an alias was given. */
  readonly label?: string;
}

// Linux device names: at most 15 bytes, no '/', ':' or blanks. Labels are `<device>:<alias>`,
// also at most 15 bytes (IFNAMSIZ - 1).
const DEVICE = /^[A-Za-z0-9_.-]{1,15}$/;

/** Parses `eth0` or `eth0:1`; errors name the property. */
export function parseInterface(text: string): InterfaceSpec {
  const [device, alias, extra] = text.split(":");
  if (device === undefined || !DEVICE.test(device) || device === "." || device === "..") {
    throw new VipError("INVALID_INTERFACE", `virtualIp.interface: "${text}" is not a network device name`);
  }
  if (alias === undefined) return { device };
  if (extra !== undefined || !/^[A-Za-z0-9_-]+$/.test(alias) || text.length > 15) {
    throw new VipError(
      "INVALID_INTERFACE",
      `virtualIp.interface: "${text}" is not <device>:<alias> of at most 15 characters`,
    );
  }
  return { device, label: text };
}
