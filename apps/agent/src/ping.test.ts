import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { pingWithin } from "./ping.ts";

// Stand-ins for pingServerCommand: shell scripts that behave like ping in each case (the
// address is appended as ping's last argument, as the agent does).
const dir = mkdtempSync(join(tmpdir(), "efm-h3-ping-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function fakePing(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

// Waits "forever" for more replies; on SIGINT prints its summary like iputils ping -q does. The
// trap is its first statement and the bound a second away, so it is set before the interrupt.
const slow = (received: number) =>
  fakePing(
    `slow${received}`,
    `trap 'echo "3 packets transmitted, ${received} received, 66% packet loss"; exit 1' INT\nwhile :; do sleep 0.05; done`,
  );

describe("pingWithin", () => {
  it("counts a reply seen by the bound: the command is interrupted and its summary read", async () => {
    expect(await pingWithin("10.0.0.1", slow(1), 1_000)).toBe(true);
  });

  it("no reply by the bound is not reachable", async () => {
    expect(await pingWithin("10.0.0.1", slow(0), 1_000)).toBe(false);
  });

  it("takes the command's own verdict when it finishes first", async () => {
    expect(await pingWithin("10.0.0.1", fakePing("ok", "exit 0"), 60_000)).toBe(true);
    expect(
      await pingWithin(
        "10.0.0.1",
        fakePing("no", 'echo "1 packets transmitted, 0 received"; exit 1'),
        60_000,
      ),
    ).toBe(false);
  });

  it("kills a command that ignores the interrupt; a command that cannot run is an error", async () => {
    const stubborn = fakePing("stubborn", "trap '' INT\nwhile :; do sleep 0.05; done");
    expect(await pingWithin("10.0.0.1", stubborn, 100)).toBe(false);
    await expect(pingWithin("10.0.0.1", join(dir, "missing"), 60_000)).rejects.toMatchObject({
      code: "ENOENT",
    });
  });
});
