import { candidacyRows } from "./table/candidacy.ts";
import { commandRows } from "./table/commands.ts";
import { investigationRows } from "./table/investigation.ts";
import { localMonitoringRows } from "./table/local-monitoring.ts";
import { promotionRows } from "./table/promotion.ts";
import { rejoinRows } from "./table/rejoin.ts";
import type { TransitionRow } from "./table/rows.ts";
import { selfFenceRows } from "./table/self-fence.ts";
import { startUpRows } from "./table/start-up.ts";
import { switchoverRows } from "./table/switchover.ts";
import { viewRows } from "./table/views.ts";

export type { EventFor, RowSource, TransitionRow } from "./table/rows.ts";

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
  ...selfFenceRows,
  ...promotionRows,
  // Before the candidacy's reconfiguration retries and the commands' resume rows, which the
  // rejoin rows refine (a rewind instead of a retry, a rejoin instead of a refusal).
  ...rejoinRows,
  ...candidacyRows,
  ...commandRows,
];
