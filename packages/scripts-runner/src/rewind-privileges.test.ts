import { describe, expect, it } from "vitest";
import { missingRewindPrivileges, REWIND_FUNCTIONS } from "./helper-rejoin.ts";

const all = REWIND_FUNCTIONS.map(() => true);

describe("missingRewindPrivileges: what pg_rewind's source role lacks on the new master", () => {
  it("a superuser lacks nothing, whatever the catalog says", () => {
    expect(
      missingRewindPrivileges({ superuser: true, version: 140_005, checkpoint: false, execute: [] }),
    ).toEqual([]);
  });

  it("a role with pg_checkpoint and EXECUTE on every function lacks nothing", () => {
    expect(
      missingRewindPrivileges({ superuser: false, version: 150_004, checkpoint: true, execute: all }),
    ).toEqual([]);
  });

  it("names each missing function by its exact signature, in pg_rewind's documented order", () => {
    const execute = [true, false, true, false];
    expect(
      missingRewindPrivileges({ superuser: false, version: 150_004, checkpoint: true, execute }),
    ).toEqual([
      "EXECUTE on pg_catalog.pg_stat_file(text, boolean)",
      "EXECUTE on pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
    ]);
  });

  it("on PostgreSQL 15 and later a missing CHECKPOINT says which role to grant", () => {
    expect(
      missingRewindPrivileges({ superuser: false, version: 150_004, checkpoint: false, execute: all }),
    ).toEqual(["CHECKPOINT (GRANT pg_checkpoint TO the role)"]);
  });

  it("before PostgreSQL 15 a missing CHECKPOINT says only a superuser may run it", () => {
    expect(
      missingRewindPrivileges({ superuser: false, version: 140_010, checkpoint: false, execute: all }),
    ).toEqual(["CHECKPOINT (superuser only before PostgreSQL 15; the new master runs 14)"]);
  });

  it("an answer missing a function's row counts as lacking it, never as holding it", () => {
    const missing = missingRewindPrivileges({
      superuser: false,
      version: 150_004,
      checkpoint: true,
      execute: [],
    });
    expect(missing).toHaveLength(REWIND_FUNCTIONS.length);
  });
});
