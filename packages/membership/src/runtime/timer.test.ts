import { afterEach, describe, expect, it, vi } from "vitest";
import { armTimerAt, MAX_TIMER_DELAY_MS } from "./timer.ts";

afterEach(() => {
  vi.useRealTimers();
});

describe("armTimerAt", () => {
  it("arms nothing for a time that never comes, so nothing spins and nothing is printed", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      let fired = 0;
      const h = armTimerAt(
        () => 0,
        Number.POSITIVE_INFINITY,
        () => fired++,
        "lease",
      );
      await new Promise((r) => setTimeout(r, 30));
      h.cancel();
      expect(fired).toBe(0);
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings.map((w) => w.name)).not.toContain("TimeoutOverflowWarning");
  });

  it("refuses a time that is not a number, naming the timer", () => {
    expect(() =>
      armTimerAt(
        () => 0,
        Number.NaN,
        () => {},
        "lease",
      ),
    ).toThrow(/timer lease/);
  });

  it("fires a time already past on the next turn", async () => {
    const fired = await new Promise<boolean>((resolve) => {
      armTimerAt(
        () => 1000,
        Number.NEGATIVE_INFINITY,
        () => resolve(true),
        "past",
      );
    });
    expect(fired).toBe(true);
  });

  it("reaches a time beyond Node's longest delay in steps, and never fires early", () => {
    vi.useFakeTimers();
    const t0 = Date.now();
    const now = () => Date.now() - t0;
    const at = 2.5 * MAX_TIMER_DELAY_MS;
    const spy = vi.spyOn(globalThis, "setTimeout");
    let firedAt: number | null = null;
    armTimerAt(
      now,
      at,
      () => {
        firedAt = now();
      },
      "far",
    );
    vi.advanceTimersByTime(2 * MAX_TIMER_DELAY_MS);
    expect(firedAt).toBeNull();
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    expect(firedAt).toBe(Math.ceil(at));
    // Every real timer it armed had a delay Node accepts.
    for (const call of spy.mock.calls) {
      const delay = call[1] as number;
      expect(Number.isFinite(delay) && delay >= 0 && delay <= MAX_TIMER_DELAY_MS).toBe(true);
    }
    expect(spy.mock.calls.length).toBe(3);
  });

  it("cancel stops a pending timer", async () => {
    let fired = 0;
    const h = armTimerAt(
      () => 0,
      5,
      () => fired++,
      "short",
    );
    h.cancel();
    await new Promise((r) => setTimeout(r, 30));
    expect(fired).toBe(0);
  });
});
