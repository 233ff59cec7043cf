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

report=$(mktemp -d)/vitest.json
status=0
npx vitest run --project unit --project sim --project integration --reporter=default --reporter=json --outputFile.json="$report" || status=$?
if [ -f "$report" ]; then
  node -e '
    const r = require(process.argv[1]);
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
  ' "$report"
else
  echo "0 passed, 1 failed"
  status=1
fi
exit $status
