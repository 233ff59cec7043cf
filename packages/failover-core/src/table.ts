import { candidacyRows } from "./table/candidacy.ts";
import { commandRows } from "./table/commands.ts";
import { investigationRows } from "./table/investigation.ts";
import { localMonitoringRows } from "./table/local-monitoring.ts";
import { promotionRows } from "./table/promotion.ts";
import { rejoinRows } from "./table/rejoin.ts";
import { otherwiseRows } from "./table/otherwise.ts";
import type { TransitionRow } from "./table/rows.ts";
import { selfFenceRows } from "./table/self-fence.ts";
import { startUpRows } from "./table/start-up.ts";
import { switchoverRows } from "./table/switchover.ts";
import { vipWatchRows } from "./table/vip-watch.ts";
import { syncRows } from "./table/sync.ts";
import { viewRows } from "./table/views.ts";

export type { EventFor, RowSource, TransitionRow } from "./table/rows.ts";

let whole: readonly TransitionRow[] | null = null;

/**
 * The whole decision table as `efm decision-table` prints it: `transitions`, then the generated
 * "otherwise" rows (table/otherwise.ts) that say which events each state ignores as stale or
 * irrelevant. Built on first use (the engine itself never needs the generated rows).
 */
export function decisionTable(): readonly TransitionRow[] {
  whole ??= [...transitions, ...otherwiseRows(transitions)];
  return whole;
}

/**
 * Every transition of the engine, in match order (first matching row wins). The rows live in
 * src/table/ by concern, each file in the order it had in the one table; the order of the concerns
 * here is the match order, so a move never reorders them.
 */
export const transitions: readonly TransitionRow[] = [
  ...startUpRows,
  ...viewRows,
  // Before the promotion and fencing rows: each matches only a promotion carrying `switchover`.
  ...switchoverRows,
  ...investigationRows,
  ...localMonitoringRows,
  // Before the candidacy's VIP result rows: the watchdog's own release is not announced as one.
  ...vipWatchRows,
  ...selfFenceRows,
  ...promotionRows,
  // Before the candidacy's reconfiguration retries and the commands' resume rows, which the
  // rejoin rows refine (a rewind instead of a retry, a rejoin instead of a refusal).
  ...rejoinRows,
  ...candidacyRows,
  ...commandRows,
  ...syncRows,
];
