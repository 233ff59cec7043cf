#!/usr/bin/env bash
# The main job: set up, then run a local demo cluster (see README).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tooling/scripts/setup.sh
if [ -f apps/agent/dist/demo.js ]; then
  exec node apps/agent/dist/demo.js "$@"
fi
echo "== efm encrypt (password 'secret' for cluster acctg)"
EFMPASS=secret bin/efm encrypt acctg --from-env
echo "== efm prop-check acctg (examples/)"
bin/efm --config-dir examples prop-check acctg
