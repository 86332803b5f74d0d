#!/bin/sh
# Builds the base container image (Debian bookworm with what the manager and Caddy run on) from
# Debian's packages on this host: no container registry is needed. The root filesystem is made
# with mmdebstrap from the host's configured apt mirror and imported with `podman import`, tagged
# with a hash of its inputs, so an unchanged package list never builds twice.
# Prints the image reference on stdout.
set -eu
cd "$(dirname "$0")"

# Runtime packages: QEMU (the VMM), nftables + iproute2 (VM networking), util-linux/coreutils
# (unshare, nsenter, setpriv, chroot, mknod for VMM confinement; essential in minbase), e2fsprogs
# (mkfs.ext4 for overlay disks), procps (sysctl in the VM namespace), libstdc++6 (Node),
# ca-certificates, caddy (the TLS front). Bump RECIPE when the mmdebstrap call below changes.
RECIPE=1
PACKAGES="qemu-system-x86 nftables iproute2 procps e2fsprogs libstdc++6 ca-certificates caddy"
SUITE=bookworm
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian

CACHE=${RDS_CACHE_DIR:-/var/cache/run-dat-sheesh}/deploy
KEY=$(printf '%s\n' "$RECIPE" "$PACKAGES" "$SUITE" "$MIRROR" | sha256sum | cut -c1-16)
REF=localhost/run-dat-sheesh-base:$KEY

if podman image exists "$REF"; then echo "$REF"; exit 0; fi

mkdir -p "$CACHE"
TAR=$CACHE/base-$KEY.tar
if [ ! -s "$TAR" ]; then
  echo "build-base: mmdebstrap $SUITE with: $PACKAGES" >&2
  command -v mmdebstrap >/dev/null || { echo "build-base: mmdebstrap missing (apt-get install mmdebstrap)" >&2; exit 1; }
  # shellcheck disable=SC2046
  mmdebstrap --quiet --variant=minbase --format=tar \
    --aptopt='APT::Install-Recommends "false"' \
    --include="$(echo $PACKAGES | tr ' ' ',')" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$TAR.part" "$MIRROR" >&2
  mv "$TAR.part" "$TAR"
  # Root filesystems of earlier package lists are not needed any more.
  find "$CACHE" -maxdepth 1 -name 'base-*.tar' ! -name "base-$KEY.tar" -delete
fi
podman import --quiet "$TAR" "$REF" >/dev/null
echo "$REF"
