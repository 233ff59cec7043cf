import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isPingProgram, isReplyFrom, pingWithin, withoutQuiet } from "./ping.ts";

// Stand-ins for pingServerCommand: shell scripts that behave like ping in each case (the
// address is appended as ping's last argument). Those in pingDir are named `ping`, so they get
// ping's treatment; the others run as configured.
const dir = mkdtempSync(join(tmpdir(), "efm-vip-ping-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function script(name: string, body: string): string {
  const p = join(dir, name);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

// Waits "forever" for more replies; on SIGINT prints its summary like iputils ping -q does. The
// trap is its first statement and the bound a second away, so it is set before the interrupt.
const slow = (received: number) =>
  script(
    `slow${received}`,
    `trap 'echo "3 packets transmitted, ${received} received, 66% packet loss"; exit 1' INT\nwhile :; do sleep 0.05; done`,
  );

describe("pingWithin, a command other than ping", () => {
  it("counts a reply seen by the bound: the command is interrupted and its summary read", async () => {
    expect(await pingWithin("10.0.0.1", slow(1), 1_000)).toBe(true);
  });

  it("no reply by the bound is not reachable", async () => {
    expect(await pingWithin("10.0.0.1", slow(0), 1_000)).toBe(false);
  });

  it("takes the command's own verdict when it finishes first", async () => {
    expect(await pingWithin("10.0.0.1", script("ok", "exit 0"), 60_000)).toBe(true);
    expect(
      await pingWithin("10.0.0.1", script("no", 'echo "1 packets transmitted, 0 received"; exit 1'), 60_000),
    ).toBe(false);
  });

  it("runs exactly as configured: -q stays, and a reply line does not answer early", async () => {
    const args = join(dir, "other-args");
    const cmd = script(
      "other",
      `echo "$@" > ${args}\necho "64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.1 ms"\nexit 3`,
    );
    expect(await pingWithin("10.0.0.1", `${cmd} -q -c3`, 60_000)).toBe(false);
    expect(readFileSync(args, "utf8").trim()).toBe("-q -c3 10.0.0.1");
  });

  it("kills a command that ignores the interrupt; a command that cannot run is an error", async () => {
    const stubborn = script("stubborn", "trap '' INT\nwhile :; do sleep 0.05; done");
    expect(await pingWithin("10.0.0.1", stubborn, 100)).toBe(false);
    await expect(pingWithin("10.0.0.1", join(dir, "missing"), 60_000)).rejects.toMatchObject({
      code: "COMMAND_NOT_FOUND",
    });
  });
});

describe("pingWithin, ping (by its basename)", () => {
  it("runs without -q and answers at the first reply line from the address, then stops the ping", async () => {
    const args = join(dir, "ping-args");
    const pid = join(dir, "ping-pid");
    // Prints one reply, then waits "forever" (60 s, far beyond the test's timeout) for more.
    const ping = script(
      "a/ping",
      `echo "$$" > ${pid}\necho "$LC_ALL $@" > ${args}\necho "PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data."\necho "64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.05 ms"\nexec sleep 60`,
    );
    const locale = process.env.LC_ALL;
    process.env.LC_ALL = "de_DE.UTF-8";
    try {
      expect(await pingWithin("10.0.0.1", `${ping} -q -c3 -w5`, 600_000)).toBe(true);
    } finally {
      if (locale === undefined) delete process.env.LC_ALL;
      else process.env.LC_ALL = locale;
    }
    // In the C locale: iputils translates its reply lines.
    expect(readFileSync(args, "utf8").trim()).toBe("C -c3 -w5 10.0.0.1");
    // Stopped: SIGINT ends `sleep`. Waiting for it is bounded by the test's timeout.
    const stopped = Number(readFileSync(pid, "utf8"));
    while (isRunning(stopped)) await new Promise((r) => setTimeout(r, 20));
  });

  it("kills a ping that ignores the interrupt after its first reply", async () => {
    const pid = join(dir, "stubborn-ping-pid");
    const ping = script(
      "d/ping",
      `trap '' INT\necho "$$" > ${pid}\necho "64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.05 ms"\nwhile :; do sleep 0.05; done`,
    );
    expect(await pingWithin("10.0.0.1", ping, 600_000)).toBe(true);
    // Only the SIGKILL after the grace can end it; waiting is bounded by the test's timeout.
    const stubborn = Number(readFileSync(pid, "utf8"));
    while (isRunning(stubborn)) await new Promise((r) => setTimeout(r, 20));
  });

  it("an error line (Destination Host Unreachable) or a reply from another address is no answer", async () => {
    const ping = script(
      "b/ping",
      `trap 'echo "2 packets transmitted, 0 received, +1 errors"; exit 1' INT
echo "From 10.0.0.7 icmp_seq=1 Destination Host Unreachable"
echo "64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=0.05 ms"
while :; do sleep 0.05; done`,
    );
    expect(await pingWithin("10.0.0.1", `${ping} -c3`, 1_000)).toBe(false);
  });

  it("a ping that ends without its summary sent nothing: an error, never 'nobody answered'", async () => {
    // iputils refusing an option (here: a deadline it cannot parse) exits 2 before any probe.
    const refused = script("e/ping", `echo "ping: invalid argument: '0.3'" >&2\nexit 2`);
    await expect(pingWithin("10.0.0.1", `${refused} -c2 -w0.3`, 60_000)).rejects.toMatchObject({
      code: "COMMAND_FAILED",
      message: expect.stringContaining("invalid argument: '0.3'"),
    });
    // With its summary, no reply is an answer: nobody there.
    const silent = script("f/ping", `echo "2 packets transmitted, 0 received, 100% packet loss"\nexit 1`);
    expect(await pingWithin("10.0.0.1", silent, 60_000)).toBe(false);
  });

  it("the real ping refusing its options is an error too", async () => {
    await expect(pingWithin("127.0.0.1", "/bin/ping --no-such-option", 60_000)).rejects.toMatchObject({
      code: "COMMAND_FAILED",
      message: expect.stringContaining("sent no probe"),
    });
  });

  it("exit code 0 is still an answer", async () => {
    expect(await pingWithin("10.0.0.1", script("c/ping", "exit 0"), 60_000)).toBe(true);
  });
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie is stopped too (Node reaps its children; this is only for the moment between).
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe("ping's output and options", () => {
  it("knows ping by the program's basename", () => {
    expect(isPingProgram("/bin/ping")).toBe(true);
    expect(isPingProgram("ping6")).toBe(true);
    expect(isPingProgram("/usr/bin/fping")).toBe(false);
    expect(isPingProgram("/opt/ping/check")).toBe(false);
  });

  it("drops only the quiet flag, alone or in a group, never a value", () => {
    expect(withoutQuiet(["-q", "-c3", "-w5"])).toEqual(["-c3", "-w5"]);
    expect(withoutQuiet(["-qn", "-c", "3"])).toEqual(["-n", "-c", "3"]);
    expect(withoutQuiet(["-nqc3"])).toEqual(["-nc3"]);
    // `q` as a value: an interface named q, a pattern, the rest of a group after -I.
    expect(withoutQuiet(["-I", "q", "-q"])).toEqual(["-I", "q"]);
    expect(withoutQuiet(["-Iq"])).toEqual(["-Iq"]);
    expect(withoutQuiet(["-c", "3", "-q", "--", "-q"])).toEqual(["-c", "3", "--", "-q"]);
  });

  it("recognises iputils and busybox reply lines, and the address in any spelling", () => {
    expect(isReplyFrom("64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.060 ms", "10.0.0.1")).toBe(true);
    expect(isReplyFrom("64 bytes from 10.0.0.1: seq=0 ttl=64 time=0.083 ms", "10.0.0.1")).toBe(true);
    expect(isReplyFrom("64 bytes from db1 (10.0.0.1): icmp_seq=1 ttl=64 time=0.1 ms", "10.0.0.1")).toBe(true);
    expect(isReplyFrom("[1796193792.88] 64 bytes from 10.0.0.1: icmp_seq=1 ttl=64", "10.0.0.1")).toBe(true);
    expect(isReplyFrom("64 bytes from ::1: icmp_seq=1 ttl=64 time=0.02 ms", "0:0::1")).toBe(true);
    expect(isReplyFrom("64 bytes from 10.0.0.11: icmp_seq=1 ttl=64", "10.0.0.1")).toBe(false);
    expect(isReplyFrom("From 10.0.0.1 icmp_seq=1 Destination Host Unreachable", "10.0.0.1")).toBe(false);
    expect(isReplyFrom("PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.", "10.0.0.1")).toBe(false);
  });
});
