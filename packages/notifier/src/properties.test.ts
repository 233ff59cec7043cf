import { describe, expect, it } from "vitest";
import { notifierOptionsFromProperties, parseRecipients } from "./properties.ts";

const env = {
  clusterName: "acctg",
  nodeAddress: "10.0.1.11",
  clusterLogPath: "/tmp/x/acctg.log",
  hostname: "db1",
};

describe("parseRecipients", () => {
  it("accepts commas, semicolons and blanks between addresses", () => {
    expect(parseRecipients(" a@x.org, b@y.org;c@z.org  d@w.org ")).toEqual([
      "a@x.org",
      "b@y.org",
      "c@z.org",
      "d@w.org",
    ]);
    expect(parseRecipients("")).toEqual([]);
  });
});

describe("notifierOptionsFromProperties", () => {
  it("uses the defaults: localhost:25, efm@<hostname>, level INFO, log + e-mail sinks", () => {
    const o = notifierOptionsFromProperties(
      { "user.email": "dba@example.com", "db.database": "postgres" },
      env,
    );
    expect(o.context).toEqual({
      nodeAddress: "10.0.1.11",
      clusterName: "acctg",
      databaseName: "postgres",
      vipEnabled: false,
      textPrefix: "",
    });
    expect(o.sinks.map((s) => [s.name, s.minSeverity])).toEqual([
      ["cluster-log", "INFO"],
      ["email", "INFO"],
    ]);
  });

  it("reads level, prefix, VIP and the notification script", () => {
    const o = notifierOptionsFromProperties(
      {
        "user.email": "a@x.org b@x.org",
        "notification.level": "warning",
        "notification.text.prefix": "[PROD]",
        virtualIp: "10.0.1.50",
        "script.notification": "/usr/local/bin/notify.sh",
      },
      env,
    );
    expect(o.context.vipEnabled).toBe(true);
    expect(o.context.textPrefix).toBe("[PROD]");
    expect(o.sinks.map((s) => [s.name, s.minSeverity])).toEqual([
      ["cluster-log", "INFO"],
      ["email", "WARNING"],
      ["script", "WARNING"],
    ]);
  });

  it("keeps only the cluster log when no address and no script are set", () => {
    expect(notifierOptionsFromProperties({}, env).sinks.map((s) => s.name)).toEqual(["cluster-log"]);
  });

  it("reports every bad property at once, naming each", () => {
    let error: unknown;
    try {
      notifierOptionsFromProperties(
        {
          "user.email": "ok@x.org not-an-address",
          "from.email": "nobody",
          "notification.smtp.port": "99999",
          "notification.level": "FINE",
          "script.notification": "notify.sh",
        },
        env,
      );
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ name: "NotifierError", code: "INVALID_OPTION" });
    const message = (error as Error).message;
    for (const key of [
      'user.email: "not-an-address"',
      'from.email: "nobody"',
      'notification.smtp.port: "99999"',
      'notification.level: "FINE"',
      'script.notification: "notify.sh"',
    ]) {
      expect(message).toContain(key);
    }
  });

  it("substitutes %h in from.email with the host name", () => {
    // No e-mail sink internals are exposed; an invalid result would throw, a valid one not.
    expect(() => notifierOptionsFromProperties({ "from.email": "efm-%h@example.com" }, env)).not.toThrow();
    expect(() => notifierOptionsFromProperties({ "from.email": "efm %h" }, env)).toThrow(
      /from.email: "efm db1"/,
    );
  });
});
