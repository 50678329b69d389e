#!/usr/bin/env bash
# A base image for infra/docker/Dockerfile built without any image registry (docs/deploy.md): Debian
# bookworm from debootstrap, with this machine's Node.js (20 or newer: the binary, npm and its headers,
# for native addons) and its extra CA certificates (a TLS-inspecting proxy's, if npm needs one here).
# Then:  podman build -f infra/docker/Dockerfile --build-arg BASE=localhost/riverrun-base:bookworm .
# Needs root, debootstrap and podman (Debian packages).
set -euo pipefail
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian
node=$(command -v node)
"$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { echo "local-base.sh: Node.js 20 or newer needed" >&2; exit 1; }
prefix=$(dirname "$(dirname "$node")")
cp "$node" "$rootfs/usr/bin/node"
mkdir -p "$rootfs/usr/lib/node_modules" "$rootfs/usr/include"
cp -a "$prefix/lib/node_modules/npm" "$rootfs/usr/lib/node_modules/"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/bin/npm"
[ -d "$prefix/include/node" ] && cp -a "$prefix/include/node" "$rootfs/usr/include/"
mkdir -p "$rootfs/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
tar -C "$rootfs" -c . | podman import \
  --change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt" --change "ENV npm_config_nodedir=/usr" \
  - localhost/riverrun-base:bookworm
