import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DurableFile } from "./durable-file.ts";

const dir = mkdtempSync(join(tmpdir(), "efm-durable-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("DurableFile", () => {
  it("ends up holding the last content handed in, however many writes were queued behind one another", async () => {
    const path = join(dir, "state.json");
    const errors: Error[] = [];
    const f = new DurableFile(path, 0o640, (e) => errors.push(e));
    const writes = Array.from({ length: 50 }, (_, i) => f.write(`${i}\n`));
    await Promise.all(writes);
    expect(readFileSync(path, "utf8")).toBe("49\n");
    expect(await f.settled()).toBeNull();
    expect(errors).toEqual([]);
    // No temporary file is left beside it.
    expect(readdirSync(dir).filter((n) => n.startsWith(".state.json"))).toEqual([]);
  });

  it("reports a failed write once through settled() and to onError; a later write that lands clears it", async () => {
    const sub = join(dir, "later");
    const path = join(sub, "state.json");
    const errors: Error[] = [];
    const f = new DurableFile(path, 0o640, (e) => errors.push(e));
    await f.write("lost\n");
    expect(errors).toHaveLength(1);
    expect((await f.settled())?.message).toMatch(/ENOENT/);
    expect(await f.settled()).toBeNull();
    await f.write("first\n");
    expect(await f.settled()).not.toBeNull();
    mkdirSync(sub);
    await f.write("kept\n");
    expect(await f.settled()).toBeNull();
    expect(readFileSync(path, "utf8")).toBe("kept\n");
  });
});
