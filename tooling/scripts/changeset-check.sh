#!/usr/bin/env bash
# Prove that a release would work without touching this working tree: copy the committed tree
# to a temporary repository, run `changeset version` there, and check that every package a
# changeset names got a new version and a CHANGELOG.md entry.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive HEAD | tar -x -C "$tmp"
cd "$tmp"
git init -q -b main
git add -A
git -c user.email=release@example.com -c user.name=release commit -qm tree
named=$(sed -n '/^---$/,/^---$/p' .changeset/*.md 2>/dev/null | grep -oE '"@efm/[a-z-]+"' | tr -d '"' | sort -u || true)
if [ -z "$named" ]; then
  echo "changeset-check: no pending changesets"
  exit 0
fi
"$root/node_modules/.bin/changeset" version >/dev/null
for pkg in $named; do
  dir=$(grep -l "\"name\": \"$pkg\"" packages/*/package.json apps/*/package.json tooling/*/package.json | head -1 | xargs dirname)
  if [ ! -f "$dir/CHANGELOG.md" ]; then
    echo "changeset-check: $pkg ($dir) has a changeset but no CHANGELOG.md after changeset version" >&2
    exit 1
  fi
  echo "changeset-check: $pkg -> $(node -p "require('./$dir/package.json').version")"
done
if ls .changeset/*.md 2>/dev/null | grep -v README.md >/dev/null; then
  echo "changeset-check: changesets left unconsumed" >&2
  exit 1
fi
echo "changeset-check: ok"
