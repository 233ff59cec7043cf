#!/usr/bin/env bash
# Check what `npm publish` would ship, the way a user would meet it: pack every public package
# (run `pnpm build` first), make sure no packed manifest points at src/ through the
# `@efm/source` condition or at `workspace:` versions, install the CLI from the tarballs into an
# empty project and run the `efm` and `efm-agent` commands it gives.
# Third-party dependencies come from the npm registry, as for a user.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for manifest in packages/*/package.json apps/*/package.json tooling/*/package.json test-e2e/package.json; do
  dir=$(dirname "$manifest")
  if node -e 'process.exit(require(process.argv[1]).private === true ? 0 : 1)' "$root/$manifest"; then
    continue
  fi
  case "$dir" in
    tooling/* | test-e2e) echo "pack-check: $dir is tooling and must be \"private\": true" >&2; exit 1 ;;
  esac
  (cd "$dir" && pnpm pack --pack-destination "$out" >/dev/null)
done

cd "$out"
for tgz in *.tgz; do
  tar -xzf "$tgz" package/package.json
  if grep -q -e '@efm/source' -e '"workspace:' package/package.json; then
    echo "pack-check: $tgz leaks a development-only field:" >&2
    grep -n -e '@efm/source' -e '"workspace:' package/package.json >&2
    exit 1
  fi
  rm -rf package
done

# Point every @efm/* dependency at its tarball, so nothing with our names comes from a registry.
mkdir project
node -e '
  const fs = require("fs");
  const tarballs = {};
  for (const f of fs.readdirSync(".").filter((f) => f.endsWith(".tgz"))) {
    const name = f.replace(/^efm-/, "@efm/").replace(/-\d+\.\d+\.\d+(-[^.]+)?\.tgz$/, "");
    tarballs[name] = `file:${process.cwd()}/${f}`;
  }
  fs.writeFileSync("project/package.json", JSON.stringify({
    name: "efm-pack-check", private: true,
    dependencies: { "@efm/cli": tarballs["@efm/cli"] }, overrides: tarballs,
  }));
'
(cd project && npm install --no-audit --no-fund --loglevel=error >/dev/null)
for cmd in efm efm-agent; do
  version=$(project/node_modules/.bin/$cmd --version)
  echo "pack-check: $cmd --version -> $version"
done
project/node_modules/.bin/efm --help >/dev/null
echo "pack-check: ok ($(ls *.tgz | wc -l) packages)"
