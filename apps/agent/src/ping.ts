import { spawn } from "node:child_process";
import { pingArgv } from "@efm/vip";

/** How long a ping interrupted at its bound may take to print its summary before it is killed. */
const SUMMARY_GRACE_MS = 500;

/** "3 packets transmitted, 1 received" (iputils), "1 packets received" (busybox). */
const RECEIVED = /(\d+)\s+(?:packets\s+)?received/;

/**
 * Did `address` answer pingServerCommand within `boundMs` (remote.timeout)? The guide's
 * default, `ping -q -c3 -w5`, waits for three replies, a second apart: two seconds of a
 * failover spent learning what the first reply already said. The command runs as configured;
 * if it has not finished at the bound it is interrupted (SIGINT) and the summary it prints
 * then says whether any reply came. Exit code 0 is an answer too. No reply by the bound is "not
 * reachable"; a command that cannot run at all rejects (the engine then assumes the VIP may be
 * in use, and the well-known server unreachable), as @efm/vip's isReachable does.
 */
export function pingWithin(address: string, pingCommand: string, boundMs: number): Promise<boolean> {
  const argv = pingArgv(address, pingCommand);
  return new Promise<boolean>((resolve, reject) => {
    let out = "";
    let done = false;
    const finish = (v: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(bound);
      clearTimeout(kill);
      resolve(v);
    };
    let kill: NodeJS.Timeout | undefined;
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", () => {});
    child.on("error", (err) => {
      if (done) return;
      done = true;
      clearTimeout(bound);
      clearTimeout(kill);
      reject(err);
    });
    child.on("close", (code) => {
      const m = RECEIVED.exec(out);
      finish(code === 0 || (m !== null && Number(m[1]) > 0));
    });
    const bound = setTimeout(
      () => {
        child.kill("SIGINT");
        kill = setTimeout(() => {
          child.kill("SIGKILL");
          finish(false);
        }, SUMMARY_GRACE_MS);
      },
      Math.max(1, boundMs),
    );
  });
}
