#!/usr/bin/env bash
# The main job: set up, then run a local demo cluster (3 PostgreSQL hosts on loopback, an
# agent each, a failover). `--keep` leaves it running. See README.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tooling/scripts/setup.sh
exec node tooling/demo/dist/demo.js "$@"
