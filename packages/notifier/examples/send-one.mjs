// Sends one notification to an SMTP server started in this process, then prints what it got.
// Run from packages/notifier after `pnpm --filter @efm/notifier build`:
//   node examples/send-one.mjs
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clusterLogSink, createNotifier, emailSink } from "@efm/notifier";
import { SMTPServer } from "smtp-server";

const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ["AUTH", "STARTTLS"],
  onData(stream, session, done) {
    let text = "";
    stream.on("data", (c) => (text += c));
    stream.on("end", () => {
      console.log(`--- mail for ${session.envelope.rcptTo.map((r) => r.address).join(", ")} ---\n${text}`);
      done();
    });
  },
});
await new Promise((resolve) => smtp.listen(0, "127.0.0.1", resolve));

const logDir = await mkdtemp(join(tmpdir(), "efm-example-"));
// The agent takes these values from @efm/properties-parser's EfmConfig (user.email,
// from.email, notification.smtp.host/port, notification.level, db.database, virtualIp, ...).
const notifier = createNotifier({
  context: { nodeAddress: "10.0.1.11", clusterName: "acctg", databaseName: "postgres", vipEnabled: false },
  sinks: [
    clusterLogSink({ path: join(logDir, "acctg.log") }),
    emailSink({
      recipients: ["dba@example.com"],
      from: "efm@db1.example.com",
      host: "127.0.0.1",
      port: smtp.server.address().port,
      minSeverity: "INFO",
    }),
  ],
});

notifier.notify({ id: "masterAgentExited", params: { nodeAddress: "10.0.1.11", clusterName: "acctg" } }, [
  { role: "Standby", address: "10.0.1.12", agent: "UP", db: "UP" },
]);
console.log(await notifier.close(10_000)); // { drained: true, pending: 0 }
console.log(`--- cluster log ---\n${await readFile(join(logDir, "acctg.log"), "utf8")}`);
smtp.close();
