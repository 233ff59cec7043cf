import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { parseProcStat, postmasterOf, processAlive, readProcStat } from "./postmaster.ts";

// A real /proc: these read this test's own child processes, nothing shared.

describe("parseProcStat", () => {
  it("counts the fields from the last parenthesis, whatever the name holds", () => {
    const tail = "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 123456 rest";
    expect(parseProcStat(`77 (post) gres) S 12 ${tail}`)).toEqual({
      pid: 77,
      comm: "post) gres",
      state: "S",
      ppid: 12,
      startTime: "123456",
    });
    expect(parseProcStat("77 (x) S 12")).toBeNull();
    expect(parseProcStat("not a stat line")).toBeNull();
  });
});

describe("processAlive", () => {
  it("is true for a running process and false once it exited", async () => {
    const child = spawn("sleep", ["60"], { stdio: "ignore" });
    await once(child, "spawn");
    const stat = await readProcStat(child.pid!);
    expect(stat).toMatchObject({ pid: child.pid, comm: "sleep", ppid: process.pid });
    const me = { pid: child.pid!, startTime: stat!.startTime };
    expect(await processAlive(me)).toBe(true);
    child.kill("SIGKILL");
    await once(child, "exit"); // Node has reaped it: /proc/<pid> is gone
    expect(await processAlive(me)).toBe(false);
  });

  it("is false for a zombie: an exited process its parent has not reaped yet", async () => {
    // sh starts `sleep 0` in the background and then waits "forever" without reaping it.
    const child = spawn("sh", ["-c", "sleep 0 & echo $!; exec sleep 60"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const [line] = (await once(child.stdout, "data")) as [Buffer];
    const pid = Number(line.toString().trim());
    // The zombie keeps its start time; wait until it has exited (bounded by the test's timeout).
    let stat = await readProcStat(pid);
    const startTime = stat!.startTime;
    while (stat?.state !== "Z") stat = await readProcStat(pid);
    expect(await processAlive({ pid, startTime })).toBe(false);
    child.kill("SIGKILL");
    await once(child, "exit");
  });

  it("is false for the same pid with another start time: a reused pid is another process", async () => {
    const stat = await readProcStat(process.pid);
    expect(await processAlive({ pid: process.pid, startTime: stat!.startTime })).toBe(true);
    expect(await processAlive({ pid: process.pid, startTime: `${stat!.startTime}0` })).toBe(false);
  });
});

describe("postmasterOf", () => {
  it("finds nothing for a process that is not PostgreSQL, or a pid that is not there", async () => {
    const child = spawn("sleep", ["60"], { stdio: "ignore" });
    await once(child, "spawn");
    expect(await postmasterOf(child.pid!)).toBeNull();
    child.kill("SIGKILL");
    await once(child, "exit");
    expect(await postmasterOf(child.pid!)).toBeNull();
    expect(await postmasterOf(0)).toBeNull();
  });
});
