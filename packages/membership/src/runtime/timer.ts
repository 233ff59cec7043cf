/**
 * Node's timers take a delay of at most 2^31-1 ms; a larger, infinite or NaN delay is replaced
 * by 1 ms with a TimeoutOverflowWarning on stderr. A timer "at Infinity" re-armed on every
 * firing therefore spins every millisecond and floods stderr. Every timer the agent arms at an
 * absolute time a pure core chose goes through here instead.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** A timer armed by armTimerAt. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Calls `fire` once `now()` has reached `at`. A time in the past fires on the next turn; a time
 * further away than Node can wait is reached in steps of at most MAX_TIMER_DELAY_MS; +Infinity
 * (never) arms nothing. NaN is a caller's bug and throws a RangeError naming `what`.
 */
export function armTimerAt(
  now: () => number,
  at: number,
  fire: () => void,
  what: string,
  opts: { unref?: boolean } = {},
): TimerHandle {
  if (Number.isNaN(at)) throw new RangeError(`timer ${what}: its time is not a number`);
  let handle: ReturnType<typeof setTimeout> | null = null;
  const arm = (): void => {
    if (at === Number.POSITIVE_INFINITY) return;
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(0, Math.ceil(at - now())));
    handle = setTimeout(() => {
      handle = null;
      // A clamped step ends before `at`: wait again rather than fire early.
      if (now() < at) arm();
      else fire();
    }, delay);
    if (opts.unref) handle.unref?.();
  };
  arm();
  return {
    cancel: () => {
      if (handle !== null) clearTimeout(handle);
      handle = null;
    },
  };
}
