import { describe, expect, it } from "vitest";
import { conninfoKeyword, synchronousStandbyNames } from "./sync-standbys.ts";

describe("synchronous_standby_names values", () => {
  it("ANY 1 over quoted names, any standby for *, none for an empty list", () => {
    expect(synchronousStandbyNames(["b", "c", "b"])).toBe('ANY 1 ("b", "c")');
    expect(synchronousStandbyNames(['we"ird', "10.0.0.2"])).toBe('ANY 1 ("we""ird", "10.0.0.2")');
    expect(synchronousStandbyNames(["*"])).toBe("ANY 1 (*)");
    expect(synchronousStandbyNames([])).toBe("");
  });
});

describe("conninfoKeyword", () => {
  it("reads plain, quoted and escaped values, the last one winning, and URI parameters", () => {
    const s = "user=rep passfile=/x host=10.0.0.1 port=5432 application_name='node b' sslmode=prefer";
    expect(conninfoKeyword(s, "application_name")).toBe("node b");
    expect(conninfoKeyword(s, "host")).toBe("10.0.0.1");
    expect(
      conninfoKeyword(
        String.raw`application_name='it\'s' fallback_application_name=walreceiver`,
        "application_name",
      ),
    ).toBe("it's");
    expect(conninfoKeyword("application_name=a application_name=b", "application_name")).toBe("b");
    expect(conninfoKeyword("host = h  application_name = c", "application_name")).toBe("c");
    expect(conninfoKeyword("postgresql://rep@h:5432/db?application_name=c", "application_name")).toBe("c");
    expect(conninfoKeyword("host=h", "application_name")).toBeUndefined();
    expect(conninfoKeyword("application_name='unterminated", "application_name")).toBeUndefined();
  });
});
