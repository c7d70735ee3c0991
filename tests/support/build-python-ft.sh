#!/usr/bin/env bash
# Build a free-threaded CPython 3.13 (`--disable-gil`) from source into target/pythons/3.13t, for
# the tests (tests/common/mod.rs finds target/pythons/*/bin/python3.*; generate.py measures its
# headers). Usage:
#
#   tests/support/build-python-ft.sh 3.13t
#
# The source is the upstream tarball Debian's stable release packages (python3.13's
# .orig.tar.xz, sha256 checked against stable's Sources index, from the mirror apt is
# configured with). 3.14's and 3.15's tarballs are not on it (those are only in sid, whose
# pool keeps binaries for them but this project's tests take them from there: fetch-python.sh),
# so 3.14t and 3.15t are not built here.
#
# Cached: a target/pythons/3.13t/bin/python3.13t that runs without the GIL is left alone.
# Time on this 2-core VM: about 10 minutes the first time (configure, make -j2, install; no
# PGO, no LTO), 0 s once built.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHONS="$ROOT/target/pythons"
DOWNLOADS="$PYTHONS/downloads"
# shellcheck source=tests/support/apt-mirror.sh
. "$(dirname "$0")/apt-mirror.sh"

NEEDED_DEBS="curl ca-certificates xz-utils build-essential pkg-config zlib1g-dev libffi-dev
  libbz2-dev liblzma-dev libssl-dev libsqlite3-dev uuid-dev libreadline-dev libncurses-dev"

[ "${1:-}" = 3.13t ] || { echo "usage: $0 3.13t" >&2; exit 2; }
prefix="$PYTHONS/3.13t"
python="$prefix/bin/python3.13t"
if "$python" -c 'import sys; sys.exit(sys._is_gil_enabled())' 2>/dev/null; then
  echo "build-python-ft: $python is installed ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
  exit 0
fi
start=$SECONDS

missing=()
for pkg in $NEEDED_DEBS; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "build-python-ft: missing Debian packages ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "build-python-ft: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$DOWNLOADS"
index="$DOWNLOADS/Sources-stable.xz"
if [ ! -s "$index" ] || [ -n "$(find "$index" -mmin +60)" ]; then
  curl -fsSL --retry 3 -o "$index.tmp" "$MIRROR/dists/stable/main/source/Sources.xz"
  mv "$index.tmp" "$index"
fi
# "DIRECTORY FILE SHA256" of python3.13's orig tarball in stable's Sources.
read -r directory file sha < <(xz -dc "$index" | awk '
  /^Package: / { pkg = $2; dir = ""; inside = 0 }
  pkg != "python3.13" { next }
  /^Directory: / { dir = $2 }
  /^Checksums-Sha256:/ { inside = 1; next }
  /^[^ ]/ { inside = 0 }
  inside && $3 ~ /\.orig\.tar\.xz$/ { sha = $1; file = $3 }
  /^$/ && file != "" && dir != "" { print dir, file, sha; exit }
  END { if (file != "" && dir != "") print dir, file, sha }
' | head -n 1)
if [ -z "${file:-}" ]; then
  echo "build-python-ft: no python3.13 source in Debian stable's Sources index" >&2
  exit 1
fi
tarball="$DOWNLOADS/$file"
if ! echo "$sha  $tarball" | sha256sum -c --status 2>/dev/null; then
  curl -fsSL --retry 3 -o "$tarball.tmp" "$MIRROR/$directory/$file"
  if ! echo "$sha  $tarball.tmp" | sha256sum -c --status; then
    echo "build-python-ft: $file does not match the sha256 in stable's Sources ($sha)" >&2
    rm -f "$tarball.tmp"
    exit 1
  fi
  mv "$tarball.tmp" "$tarball"
fi

build="$PYTHONS/build-3.13t"
rm -rf "$build" "$prefix"
mkdir -p "$build"
tar -xJf "$tarball" -C "$build" --strip-components=1
cd "$build"
echo "build-python-ft: building $file with --disable-gil (make -j$(nproc); output in $build/build.log)"
{
  ./configure --disable-gil --prefix="$prefix" --without-ensurepip
  make -j"$(nproc)"
  make install
} >"$build/build.log" 2>&1 || { tail -n 30 "$build/build.log" >&2; exit 1; }
echo "Upstream $file (Debian stable's python3.13 source), --disable-gil" >"$prefix/SOURCE"
rm -rf "$build"
"$python" -c 'import sys, threading, trace, json
assert not sys._is_gil_enabled(), "the GIL is on"
print("build-python-ft: installed", sys.version.split()[0], "free-threaded at", sys.executable)'
echo "build-python-ft: 3.13t took $((SECONDS - start)) s"
