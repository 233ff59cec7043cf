#!/usr/bin/env bash
# `pnpm package`: build dist/efm_<version>_all.deb with dpkg-deb. Run `pnpm build` first.
#
# The package installs the CLI and the agent under /usr/lib/efm (npm's layout: the paths the
# sudoers drop-in names), /usr/bin/efm and /usr/bin/efm-agent, the systemd template unit
# efm@.service, the sudoers drop-in, logrotate, man pages, bash completion and the property
# templates in /etc/efm; postinst creates the `efm` system user and group. Third-party
# dependencies come from the npm registry while building, as for `npm install`.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
version=$(node -p 'require("./apps/efm/package.json").version')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
lib=$stage/usr/lib/efm

for dir in packages/* apps/*; do
  if node -e 'process.exit(require(process.argv[1]).private === true ? 0 : 1)' "$root/$dir/package.json"; then continue; fi
  (cd "$dir" && pnpm pack --pack-destination "$work" >/dev/null)
done

# Install @efm/cli and what it needs from the tarballs into /usr/lib/efm, npm's flat layout.
mkdir -p "$lib"
node -e '
  const fs = require("fs");
  const [work, lib] = process.argv.slice(1);
  const tarballs = {};
  for (const f of fs.readdirSync(work).filter((f) => f.endsWith(".tgz"))) {
    tarballs[f.replace(/^efm-/, "@efm/").replace(/-\d+\.\d+\.\d+(-[^.]+)?\.tgz$/, "")] = `file:${work}/${f}`;
  }
  fs.writeFileSync(`${lib}/package.json`, JSON.stringify({
    name: "efm-installed", private: true,
    dependencies: { "@efm/cli": tarballs["@efm/cli"] }, overrides: tarballs,
  }));
' "$work" "$lib"
(cd "$lib" && npm install --omit=dev --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null)
# What stays is node_modules: the manifest named the build's temporary tarballs.
rm -f "$lib/package.json"
rm -rf "$lib/node_modules/.bin"
find "$lib/node_modules" \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.ts.map' \) -delete

cli=$lib/node_modules/@efm/cli
install -d "$stage/usr/bin"
ln -s ../lib/efm/node_modules/@efm/cli/dist/bin/efm.js "$stage/usr/bin/efm"
ln -s ../lib/efm/node_modules/@efm/cli/dist/bin/efm-agent.js "$stage/usr/bin/efm-agent"

install -d "$stage/lib/systemd/system" "$stage/etc/sudoers.d" "$stage/etc/logrotate.d" "$stage/etc/efm"
sed 's#^ExecStart=/usr/local/bin/efm-agent #ExecStart=/usr/bin/efm-agent #' apps/agent/packaging/efm@.service \
  >"$stage/lib/systemd/system/efm@.service"
grep -q '^ExecStart=/usr/bin/efm-agent ' "$stage/lib/systemd/system/efm@.service"
install -m 0440 packages/scripts-runner/sudoers/efm "$stage/etc/sudoers.d/efm"
install -m 0644 apps/agent/packaging/logrotate "$stage/etc/logrotate.d/efm"
install -m 0644 examples/efm.properties.in examples/efm.nodes.in "$stage/etc/efm/"

install -d "$stage/usr/share/man/man1" "$stage/usr/share/man/man8" "$stage/usr/share/bash-completion/completions"
gzip -9n <"$cli/man/efm.1" >"$stage/usr/share/man/man1/efm.1.gz"
gzip -9n <"$cli/man/efm-agent.8" >"$stage/usr/share/man/man8/efm-agent.8.gz"
install -m 0644 "$cli/completion/efm.bash" "$stage/usr/share/bash-completion/completions/efm"
ln -s efm "$stage/usr/share/bash-completion/completions/efm-agent"

doc=$stage/usr/share/doc/efm
install -d "$doc"
install -m 0644 README.md docs/operations.md examples/haproxy.cfg "$doc/"
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: efm-ts"
  echo
  echo "Files: *"
  echo "License: Apache-2.0"
  echo " On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0."
} >"$doc/copyright"

install -d -m 0755 "$stage/DEBIAN"
installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: efm
Version: $version
Architecture: all
Maintainer: efm-ts maintainers <efm@example.com>
Depends: nodejs (>= 20), adduser, sudo, iproute2, iputils-ping
Recommends: postgresql-client, logrotate
Section: database
Priority: optional
Installed-Size: $installed_kb
Homepage: https://example.com/efm-ts
Description: PostgreSQL failover manager (EFM 2.0.3 compatible)
 An agent on each database host joins a cluster with the others, watches its
 local PostgreSQL, agrees with the others on failures, promotes the most
 up-to-date standby, moves a virtual IP, runs scripts and sends e-mail.
 The efm command manages the cluster; property files written for EDB Failover
 Manager 2.0.3 work unchanged.
CONTROL
(cd "$stage" && find etc -type f | sed 's#^#/#' | sort) >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
# Create the efm system user and group and the folders the agent writes. DPKG_ROOT is set
# when dpkg installs into another root (--root with --force-script-chrootless).
set -e
root="${DPKG_ROOT:-}"
if [ "$1" = configure ]; then
  getent_in_root() { grep -q "^$2:" "$root/etc/$1" 2>/dev/null; }
  if ! getent_in_root group efm; then
    groupadd --system ${root:+--root "$root"} efm
  fi
  if ! getent_in_root passwd efm; then
    useradd --system ${root:+--root "$root"} -g efm -d /var/lib/efm -s /usr/sbin/nologin \
      -c "failover manager agent" efm
  fi
  # Numeric ids from the root being installed into, which may not be this system's.
  uid=$(grep '^efm:' "$root/etc/passwd" | cut -d: -f3)
  gid=$(grep '^efm:' "$root/etc/group" | cut -d: -f3)
  for d in /var/lib/efm /var/log/efm; do
    install -d -m 0750 "$root$d"
    chown "$uid:$gid" "$root$d"
  done
  chown "0:$gid" "$root/etc/efm"
  chmod 0750 "$root/etc/efm"
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
fi
exit 0
POSTINST
cat >"$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
# On purge, remove what postinst created; the user and group stay (files may still be theirs).
set -e
root="${DPKG_ROOT:-}"
if [ "$1" = purge ]; then
  rm -rf "$root/var/lib/efm" "$root/var/log/efm"
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
fi
exit 0
POSTRM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"

mkdir -p dist
out=dist/efm_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
