#!/usr/bin/env bash
# Unpack Debian's i386 CPython 3.11 into arch/i386/root, for the test that a real 32-bit Python
# is refused with one line (tests/it/bad_targets.rs). Idempotent: quick when already done.
#
# The packages cannot be installed beside the host's python3.11, so they are downloaded and
# unpacked; `arch/i386/python3.11` runs them with their own loader. x86_64 kernels run i386
# binaries natively (IA32 emulation), no qemu needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${I386_ROOT:-$here/root}"

if [ -x "$root/usr/bin/python3.11" ]; then
  echo "i386 Python ready: $here/python3.11"
  exit 0
fi
if ! dpkg --print-foreign-architectures | grep -qx i386; then
  dpkg --add-architecture i386
  apt-get update -qq
fi
mkdir -p "$root" "$root.debs"
(cd "$root.debs" && apt-get download -qq python3.11-minimal:i386 libpython3.11-minimal:i386 \
    libc6:i386 libexpat1:i386 zlib1g:i386)
for deb in "$root.debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
rm -rf "$root.debs"
echo "i386 Python ready: $here/python3.11"
