#!/usr/bin/env bash
# Everything a fresh machine needs before the demo or the tests: system packages (as root),
# pnpm at the pinned version, the workspace's dependencies and a build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."

PNPM_VERSION=12.4.2
PG_BIN=/usr/lib/postgresql/15/bin

need_pkgs=()
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v ping >/dev/null || need_pkgs+=(iputils-ping)
command -v arping >/dev/null || need_pkgs+=(iputils-arping)
command -v sudo >/dev/null || need_pkgs+=(sudo)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v haproxy >/dev/null || need_pkgs+=(haproxy)         # test-e2e/http.test.ts routes writes through it
command -v groff >/dev/null || need_pkgs+=(groff-base)       # the man page test renders the pages
command -v dpkg-deb >/dev/null || need_pkgs+=(dpkg)          # pnpm package builds the .deb
command -v chromium >/dev/null || need_pkgs+=(chromium)      # test-e2e/http.test.ts opens the status page
[ -x "$PG_BIN/postgres" ] || need_pkgs+=(postgresql-15)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "setup: missing system packages (${need_pkgs[*]}); run as root once, or: sudo apt-get install ${need_pkgs[*]}" >&2
  fi
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION"
  npm install -g --silent "pnpm@$PNPM_VERSION"
fi

pnpm install --frozen-lockfile --reporter=silent
pnpm build --output-logs=errors-only
