import net from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { MembershipError } from "../errors.ts";
import { createMember, type Member, type MemberEvent } from "./member.ts";

// In-process API checks on 127.0.4.20-21, port 17405 (reserved for this file).
const A = "127.0.4.20:17405";
const started: Member[] = [];
afterAll(async () => {
  await Promise.all(started.map((m) => m.stop()));
});

const base = { clusterName: "embapi", dbPassword: "pw", timeout: 200, maxTries: 3 };

describe("createMember", () => {
  it("rejects bad options with a typed error", () => {
    expect(() => createMember({ ...base, bindAddress: "nonsense" })).toThrow(MembershipError);
    try {
      createMember({ ...base, bindAddress: A, timeout: 1 });
    } catch (e) {
      expect((e as MembershipError).code).toBe("INVALID_OPTIONS");
    }
  });

  it("founds a cluster alone, streams events, runs admin changes, and ends the stream on stop", async () => {
    const m = createMember({
      ...base,
      bindAddress: A,
      seeds: [],
      initialAllowed: ["127.0.4.20"],
      mayFoundAlone: true,
    });
    started.push(m);
    const seen: MemberEvent[] = [];
    const iter = m.events();
    const reader = (async () => {
      for await (const e of iter) seen.push(e);
    })();
    const formed = new Promise<void>((r) => m.on("viewInstalled", () => r()));
    await m.start();
    await formed;
    await expect(m.allow("127.0.4.21")).resolves.toBeUndefined();
    expect(m.config().allowed).toEqual(["127.0.4.20", "127.0.4.21"]);
    expect(m.view()).toMatchObject({ members: [A], coordinator: A, quorate: true });
    await expect(m.request("127.0.4.21:17405", { q: 1 }, 100)).rejects.toMatchObject({
      code: "REQUEST_TIMEOUT",
    });
    await m.stop();
    await reader;
    expect(seen.map((e) => e.type)).toEqual(
      expect.arrayContaining(["viewInstalled", "persist", "configCommitted"]),
    );
  });

  it("reports a taken address as BIND_FAILED", async () => {
    const x = createMember({ ...base, bindAddress: "127.0.4.21:17405", seeds: [] });
    const y = createMember({ ...base, bindAddress: "127.0.4.21:17405", seeds: [] });
    started.push(x, y);
    await x.start();
    await expect(y.start()).rejects.toMatchObject({ code: "BIND_FAILED" });
  });

  it("logs dropped frames at a limited rate and keeps serving", async () => {
    const warnings: unknown[] = [];
    const logger = { info: () => {}, debug: () => {}, warn: (o: object) => warnings.push(o) };
    const m = createMember({
      ...base,
      bindAddress: "127.0.4.22:17405",
      seeds: [],
      initialAllowed: ["127.0.4.22"],
      mayFoundAlone: true,
      logger,
    });
    started.push(m);
    const formed = new Promise<void>((r) => m.on("viewInstalled", () => r()));
    await m.start();
    await formed;
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect({ host: "127.0.4.22", port: 17405, localAddress: "127.0.4.23" });
        s.on("error", () => resolve());
        s.on("close", () => resolve());
        s.on("connect", () => {
          const len = Buffer.alloc(4);
          len.writeUInt32BE(0xffffffff);
          s.end(len);
        });
      });
    }
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatchObject({ reason: expect.stringMatching(/frame length/) });
    expect(m.view()?.members).toEqual(["127.0.4.22:17405"]);
  });
});
