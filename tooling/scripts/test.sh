#!/usr/bin/env bash
# The one test command: set up, lint, typecheck, then every test (unit, simulation,
# integration on real PostgreSQL/TCP/SMTP/namespaces). Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tooling/scripts/setup.sh

pnpm lint
pnpm typecheck --output-logs=errors-only
# A release must work: `changeset version` on a copy of the committed tree.
bash tooling/scripts/changeset-check.sh

reports=$(mktemp -d)
status=0
npx vitest run --project unit --project sim --reporter=default --reporter=json --outputFile.json="$reports/fast.json" || status=$?
# The real clusters run after, alone: beside the simulator's CPU-bound seeds on a 2-core machine,
# suites whose agents hold leases of a second or two failed now and then for want of CPU.
npx vitest run --project integration --reporter=default --reporter=json --outputFile.json="$reports/integration.json" || status=$?
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  for (const f of process.argv.slice(1)) {
    if (!fs.existsSync(f)) { failed++; continue; }
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests;
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$reports/fast.json" "$reports/integration.json"
exit $status
