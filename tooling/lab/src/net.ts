import { LabError } from "./errors.ts";

/** Parse a dotted IPv4 address into a 32-bit unsigned integer; null when malformed. */
export function ipv4ToInt(ip: string): number | null {
  const parts = ip.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}

/** Format a 32-bit unsigned integer as a dotted IPv4 address. */
export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

export interface Subnet {
  network: number;
  prefixLength: number;
  /** Number of addresses in the subnet. */
  size: number;
}

/** Parse `10.201.1.0/24`; the host bits must be zero so a typo cannot silently move the subnet. */
export function parseSubnet(cidr: string): Subnet {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr);
  const ip = m?.[1] === undefined ? null : ipv4ToInt(m[1]);
  const prefixLength = Number(m?.[2]);
  if (ip === null || !(prefixLength >= 8 && prefixLength <= 29)) {
    throw new LabError("INVALID_OPTIONS", `subnet ${JSON.stringify(cidr)}: expected a.b.c.d/8..29`);
  }
  const size = 2 ** (32 - prefixLength);
  if (ip % size !== 0) {
    throw new LabError("INVALID_OPTIONS", `subnet ${cidr}: host bits are not zero`);
  }
  return { network: ip, prefixLength, size };
}

/** The n-th address of a subnet (1 = first usable). */
export function subnetAddress(subnet: Subnet, n: number): string {
  if (n < 1 || n >= subnet.size - 1) {
    throw new LabError("INVALID_OPTIONS", `address #${n} does not fit in a /${subnet.prefixLength}`);
  }
  return intToIpv4(subnet.network + n);
}

/** Address `base.octet` for loopback mode, e.g. ("127.0.1", 11) -> 127.0.1.11. */
export function loopbackAddress(base: string, octet: number): string {
  const ip = `${base}.${octet}`;
  const n = ipv4ToInt(ip);
  if (n === null || !ip.startsWith("127.") || octet < 1 || octet > 254) {
    throw new LabError("INVALID_OPTIONS", `loopback address ${ip}: addressBase must look like 127.x.y`);
  }
  return ip;
}
