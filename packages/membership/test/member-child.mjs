// A cluster member in its own process, for the integration tests (SIGKILL needs a process).
// argv[2]: JSON MemberOptions. stdout: one JSON event per line. stdin: "leave", "stop", "stop-cluster".
import { createInterface } from "node:readline";
import { createMember } from "../dist/index.js";

const options = JSON.parse(process.argv[2] ?? "{}");
// EFM_TEST_LOG=1 shows the member's log on stderr (for debugging a test).
const say = (level) => (obj, msg) =>
  process.stderr.write(`${options.bindAddress} ${level} ${msg} ${JSON.stringify(obj)}\n`);
if (process.env.EFM_TEST_LOG === "1")
  options.logger = { info: say("info"), warn: say("warn"), debug: () => {} };
const member = createMember(options);
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
member.on("event", (e) => {
  // leaseValid repeats on every renewal; leaseLost is rare and tests assert its absence.
  if (e.type === "persist" || e.type === "leaseValid") return;
  print({ ...e, at: member.now() });
  if (e.type === "halted") setTimeout(() => process.exit(0), 20);
});
await member.start();
print({ type: "ready", self: member.self, at: member.now() });
createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "leave") void member.leave();
  else if (cmd === "stop-cluster") void member.stopCluster();
  else if (cmd === "stop") void member.stop().then(() => process.exit(0));
});
