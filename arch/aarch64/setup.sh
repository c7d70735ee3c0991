#!/usr/bin/env bash
# Install what building and testing tracer for aarch64 needs on Debian 12 (x86_64 host), and
# unpack an arm64 CPython to run under qemu-user. Idempotent: quick when already done.
#
# - Debian's rustc-web/cargo-web (Rust 1.8x+, bookworm-security) with libstd-rust-web-dev:arm64
#   give an aarch64 std (rustup cannot download one here); gcc-aarch64-linux-gnu links.
# - qemu-user-static runs arm64 binaries (called explicitly: binfmt_misc is not mounted).
# - python3.11 for arm64 cannot be installed beside the host's, so its packages are downloaded
#   and unpacked into arch/aarch64/root (ROOT/usr/bin/python3.11 under qemu -L ROOT).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${AARCH64_ROOT:-$here/root}"

need_apt=0
for tool in /usr/bin/cargo /usr/bin/rustc /usr/bin/aarch64-linux-gnu-gcc /usr/bin/qemu-aarch64-static; do
  [ -x "$tool" ] || need_apt=1
done
dpkg -s libstd-rust-web-dev:arm64 >/dev/null 2>&1 || need_apt=1

if [ "$need_apt" = 1 ]; then
  dpkg --add-architecture arm64
  apt-get update -qq
  packages="rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
  # A first install can fail halfway with "cannot access archive"; fix and try once more.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages; then
    DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages
  fi
fi

# The full standard library too: the tests need trace, json, threading, asyncio.
if [ ! -f "$root/usr/lib/python3.11/trace.py" ]; then
  mkdir -p "$root" "$root.debs"
  (cd "$root.debs" && apt-get download -qq python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
      libpython3.11-stdlib:arm64 libexpat1:arm64 zlib1g:arm64 libc6:arm64 libffi8:arm64)
  for deb in "$root.debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  rm -rf "$root.debs"
fi
echo "aarch64 toolchain ready; arm64 Python: qemu-aarch64-static -L $root $root/usr/bin/python3.11"
