import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { harnessConfig, initialState, settleWhen, step } from "@efm/failover-core";
import { afterAll, describe, expect, it } from "vitest";
import { contextLogger, createLoggers, type LogStateSource, ROLE_STARTING, stateFields } from "./logging.ts";
import { EventLoop, type Executors } from "./loop.ts";

const SELF = "10.0.0.1:7800";

/** A pino destination that keeps each JSON line, parsed. */
function lineSink(): { stream: { write(line: string): void }; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { stream: { write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }, lines };
}

describe("stateFields", () => {
  it("says starting with no epoch before the engine has a role or a view", () => {
    expect(stateFields(undefined)).toEqual({ role: ROLE_STARTING, epoch: null });
    expect(stateFields({ role: null, view: null })).toEqual({ role: ROLE_STARTING, epoch: null });
    expect(stateFields({ role: "Master", view: { epoch: 7 } })).toEqual({ role: "Master", epoch: 7 });
  });
});

describe("log lines of the agent's event loop", () => {
  it("carry cluster, node, the live role and view epoch; decision lines keep rule, from, to and the reason", () => {
    const { stream, lines } = lineSink();
    let loop: EventLoop | undefined;
    const log = contextLogger({ cluster: "acctg", node: SELF, state: () => loop?.current }, stream);

    // The local role check settles when the test says so, so every line below is written in a
    // known order; every other port never answers (nothing else runs during the test).
    let answerRole: (() => void) | undefined;
    const never = () =>
      settleWhen(
        () => {},
        () => undefined,
      );
    const exec = new Proxy(
      {},
      {
        get: (_t, key) =>
          key === "checkLocalRole"
            ? () =>
                settleWhen(
                  (run) => {
                    answerRole = run;
                  },
                  () => "recovery",
                )
            : never,
      },
    ) as unknown as Executors;

    log.info("before the engine");
    loop = new EventLoop(initialState(harnessConfig(SELF, { allowed: [SELF] })), step, exec, log, () => 1000);
    log.info("engine built");
    loop.dispatch({ type: "started", now: 1000 });
    expect(answerRole).toBeTypeOf("function");
    answerRole?.();
    log.info("role known");
    loop.membership({
      type: "viewInstalled",
      view: {
        epoch: 3,
        members: [SELF],
        coordinator: SELF,
        quorate: true,
        subgroups: [[SELF]],
        voters: [SELF],
      },
      left: [],
    });
    log.info("view known");
    // A field the call passes wins over the live one (membership names the view it is about).
    log.info({ epoch: 4 }, "membership: view installed");
    loop.stop();

    const at = (msg: string) => {
      const found = lines.filter((l) => l.msg === msg);
      expect(found, msg).toHaveLength(1);
      return found[0] as Record<string, unknown>;
    };
    for (const l of lines) expect(l).toMatchObject({ cluster: "acctg", node: SELF });
    expect(at("before the engine")).toMatchObject({ role: "starting", epoch: null });
    expect(at("engine built")).toMatchObject({ role: "starting", epoch: null });
    expect(at("role known")).toMatchObject({ role: "Standby", epoch: null });
    expect(at("view known")).toMatchObject({ role: "Standby", epoch: 3 });
    expect(at("membership: view installed")).toMatchObject({ role: "Standby", epoch: 4 });

    const decisions = lines.filter((l) => typeof l.rule === "string");
    // Before the role check answers, the engine has no role: the decision line says starting.
    expect(decisions[0]).toMatchObject({
      rule: "start.probe",
      from: "starting",
      to: "starting",
      role: "starting",
      epoch: null,
    });
    // The decision that learns the role carries the role it decided; `from` keeps the phase before.
    expect(decisions.find((l) => l.rule === "start.recovery")).toMatchObject({
      from: "starting",
      to: "joining",
      role: "Standby",
      epoch: null,
      cluster: "acctg",
      node: SELF,
      msg: expect.stringContaining("standby"),
    });
    expect(decisions.find((l) => l.rule === "join.quorate")).toMatchObject({
      from: "joining",
      to: "checking",
      role: "Standby",
      epoch: 3,
    });
  });
});

describe("createLoggers", () => {
  const dir = mkdtempSync(join(tmpdir(), "efm-logging-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("puts the fields on the efm, jgroups and startup logs, following the engine once told to", () => {
    const logs = createLoggers({
      cluster: "acctg",
      node: SELF,
      logFile: join(dir, "acctg.log"),
      startupFile: join(dir, "startup-acctg.log"),
      efmLevel: "INFO",
      jgroupsLevel: "INFO",
    });
    logs.startup.info("starting agent");
    logs.jgroups.info("membership: joining");
    let state: LogStateSource = { role: "Standby", view: { epoch: 2 } };
    logs.follow(() => state);
    logs.efm.info("standby line");
    state = { role: "Master", view: { epoch: 5 } };
    logs.jgroups.info("membership: view installed");
    logs.startup.info("agent is ready");
    logs.flush();

    const read = (f: string) =>
      readFileSync(join(dir, f), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const fields = (l: Record<string, unknown>) => [l.component, l.cluster, l.node, l.role, l.epoch, l.msg];
    expect(read("acctg.log").map(fields)).toEqual([
      ["startup", "acctg", SELF, "starting", null, "starting agent"],
      ["jgroups", "acctg", SELF, "starting", null, "membership: joining"],
      ["efm", "acctg", SELF, "Standby", 2, "standby line"],
      ["jgroups", "acctg", SELF, "Master", 5, "membership: view installed"],
      ["startup", "acctg", SELF, "Master", 5, "agent is ready"],
    ]);
    expect(read("startup-acctg.log").map(fields)).toEqual([
      ["startup", "acctg", SELF, "starting", null, "starting agent"],
      ["startup", "acctg", SELF, "Master", 5, "agent is ready"],
    ]);
  });
});
