import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addressFamily,
  netmaskToPrefix,
  normalizeAddress,
  parseInterface,
  prefixToNetmask,
} from "./address.ts";
import { isVipError } from "./errors.ts";
import { pingArgv } from "./ping.ts";

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return isVipError(e) ? e.code : "untyped";
  }
  return "ok";
};

describe("netmask", () => {
  it.each([
    ["255.255.255.0", 24],
    ["255.255.255.255", 32],
    ["0.0.0.0", 0],
    ["128.0.0.0", 1],
    ["255.255.240.0", 20],
    ["24", 24],
    ["/16", 16],
  ])("%s is /%i", (mask, prefix) => {
    expect(netmaskToPrefix(mask)).toBe(prefix);
  });
  it.each(["255.255.0.255", "0.255.255.255", "255.255.255.1", "33", "255.255.255", "abc", "", "-1"])(
    "%j is refused",
    (mask) => {
      expect(code(() => netmaskToPrefix(mask))).toBe("INVALID_NETMASK");
    },
  );
  it("accepts IPv6 prefix lengths and masks", () => {
    expect(netmaskToPrefix("64", "inet6")).toBe(64);
    expect(netmaskToPrefix("128", "inet6")).toBe(128);
    expect(netmaskToPrefix("ffff:ffff:ffff:ffff::", "inet6")).toBe(64);
    expect(code(() => netmaskToPrefix("129", "inet6"))).toBe("INVALID_NETMASK");
    expect(code(() => netmaskToPrefix("ffff::ffff", "inet6"))).toBe("INVALID_NETMASK");
    expect(code(() => netmaskToPrefix("255.255.255.0", "inet6"))).toBe("INVALID_NETMASK");
  });
  it("prefix -> netmask -> prefix is the identity", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 32 }), (p) => {
        expect(netmaskToPrefix(prefixToNetmask(p))).toBe(p);
      }),
    );
    expect(prefixToNetmask(24)).toBe("255.255.255.0");
    expect(prefixToNetmask(0)).toBe("0.0.0.0");
    expect(code(() => prefixToNetmask(33))).toBe("INVALID_NETMASK");
  });
  it("refuses every non-contiguous dotted mask", () => {
    fc.assert(
      fc.property(fc.ipV4(), (mask) => {
        const bits = mask
          .split(".")
          .map((o) => Number(o).toString(2).padStart(8, "0"))
          .join("");
        const contiguous = /^1*0*$/.test(bits);
        expect(code(() => netmaskToPrefix(mask))).toBe(contiguous ? "ok" : "INVALID_NETMASK");
      }),
    );
  });
});

describe("addresses", () => {
  it("knows the family and refuses non-addresses", () => {
    expect(addressFamily("10.0.0.1")).toBe("inet");
    expect(addressFamily("2001:db8::1")).toBe("inet6");
    for (const bad of ["10.0.0.256", "host.example", "", "fe80::1%eth0", "10.0.0.1/24"]) {
      expect(code(() => addressFamily(bad))).toBe("INVALID_ADDRESS");
    }
  });
  it("normalizes IPv6 spellings", () => {
    expect(normalizeAddress("2001:DB8:0::1")).toBe(normalizeAddress("2001:db8::0:1"));
    expect(normalizeAddress("::ffff:10.0.0.1")).toBe("0:0:0:0:0:ffff:a00:1");
    expect(normalizeAddress("::")).toBe("0:0:0:0:0:0:0:0");
    expect(normalizeAddress("10.1.2.3")).toBe("10.1.2.3");
  });
});

describe("parseInterface", () => {
  it("splits device and alias label", () => {
    expect(parseInterface("eth0:0")).toEqual({ device: "eth0", label: "eth0:0" });
    expect(parseInterface("eth0")).toEqual({ device: "eth0" });
    expect(parseInterface("enp0s3:vip")).toEqual({ device: "enp0s3", label: "enp0s3:vip" });
  });
  it.each(["", ":0", "eth0:", "eth0:0:1", "eth 0", "a/b", "verylongdevice16", "eth01234567:1234", "eth0;rm"])(
    "refuses %j",
    (bad) => {
      expect(code(() => parseInterface(bad))).toBe("INVALID_INTERFACE");
    },
  );
});

describe("pingArgv", () => {
  it("appends the address to the configured command", () => {
    expect(pingArgv("10.0.0.9")).toEqual(["/bin/ping", "-q", "-c3", "-w5", "10.0.0.9"]);
    expect(pingArgv("10.0.0.9", "  /usr/bin/ping  -c 1 ")).toEqual(["/usr/bin/ping", "-c", "1", "10.0.0.9"]);
    expect(code(() => pingArgv("10.0.0.9", " "))).toBe("USAGE");
    expect(code(() => pingArgv("$(reboot)"))).toBe("INVALID_ADDRESS");
  });
});
