#!/usr/bin/env bash
# Install CPython 3.X from Debian sid's binary packages into target/pythons/3.X, for the tests
# (tests/common/mod.rs and generate.py find target/pythons/*/bin/python3.X). Usage:
#
#   tests/support/fetch-python.sh 3.14 [3.15 ...]
#
# Why binary packages and not a source build: the package mirror this project can reach serves
# sid's binary packages but not the upstream .orig.tar.xz of python3.14/python3.15 (404), and
# no other source of CPython tarballs is reachable. Debian's own build is a fine test subject:
# the release build with the GIL that users run, and libpython3.X-dev ships the headers of that
# very build, internal ones included, which generate.py measures.
#
# For each version, from sid's Packages index (sha256 of each .deb checked against it):
#   python3.X-minimal      the interpreter (libpython linked in statically, like Debian's
#                          /usr/bin/python3.11 that the tests also use)
#   libpython3.X-minimal, libpython3.X-stdlib   the standard library
#   libpython3.X-dev       the headers (include/python3.X/internal)
#   libc6                  sid's glibc: the interpreter needs a newer one than bookworm's
# are unpacked with dpkg-deb under target/pythons/3.X, and the interpreter is pointed at the
# unpacked glibc with patchelf (its ELF interpreter and RUNPATH); the other libraries it and its
# extension modules need (zlib, expat, libffi, ...) are bookworm's, same sonames. Not `ssl` and
# `_hashlib`: they need OpenSSL 3.3+, bookworm has 3.0, so they fail to import (hashlib falls
# back to its builtin hashes; no test needs either). The result is tied to its path: move the
# checkout and delete target/pythons to refetch.
#
# Cached: a version whose target/pythons/3.X/bin/python3.X runs is left alone. Missing Debian
# packages the script needs (curl, xz-utils, patchelf, the runtime libraries) are installed with
# apt-get (CI is a clean Debian bookworm container, as root).
#
# Time on this 2-core VM: about 40 s for 3.14 and 3.15 the first time (downloads of ~30 MB per
# version, no compiling; in a clean container add apt-get update and install), 0 s once installed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHONS="$ROOT/target/pythons"
DOWNLOADS="$PYTHONS/downloads"
# shellcheck source=tests/support/apt-mirror.sh
. "$(dirname "$0")/apt-mirror.sh"
ARCH=$(dpkg --print-architecture)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)

NEEDED_DEBS="curl ca-certificates xz-utils patchelf libexpat1 zlib1g libssl3 libffi8 libbz2-1.0
  liblzma5 libsqlite3-0 libuuid1 libzstd1 libncursesw6 libtinfo6 libreadline8"

usage() { echo "usage: $0 3.14 [3.15 ...]" >&2; exit 2; }
[ $# -ge 1 ] || usage

install_needed_debs() {
  local missing=()
  for pkg in $NEEDED_DEBS; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "fetch-python: missing Debian packages ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "fetch-python: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# sid's Packages index for this architecture, refreshed when older than an hour.
packages_index() {
  local index="$DOWNLOADS/Packages-sid-$ARCH.xz"
  if [ ! -s "$index" ] || [ -n "$(find "$index" -mmin +60)" ]; then
    curl -fsSL --retry 3 -o "$index.tmp" "$MIRROR/dists/sid/main/binary-$ARCH/Packages.xz"
    mv "$index.tmp" "$index"
  fi
  echo "$index"
}

# Prints "VERSION FILENAME SHA256" of the newest binary package NAME in the index.
package_entry() {
  local name=$1 index=$2
  xz -dc "$index" | awk -v pkg="$name" '
    /^Package: / { name = $2; ver = ""; file = ""; sha = "" }
    name != pkg  { next }
    /^Version: / { ver = $2 }
    /^Filename: / { file = $2 }
    /^SHA256: /  { sha = $2 }
    /^$/ && ver != "" { print ver, file, sha; name = "" }
    END { if (name == pkg && ver != "") print ver, file, sha }
  ' | sort -V | tail -n 1
}

# Download NAME's newest .deb (verified) and unpack it into DEST; prints its version.
fetch_deb() {
  local name=$1 dest=$2 index=$3 entry version file sha deb
  entry=$(package_entry "$name" "$index")
  read -r version file sha <<<"$entry"
  if [ -z "${file:-}" ] || [ -z "${sha:-}" ]; then
    echo "fetch-python: no package $name for $ARCH in sid" >&2
    return 1
  fi
  deb="$DOWNLOADS/$(basename "$file")"
  if ! echo "$sha  $deb" | sha256sum -c --status 2>/dev/null; then
    curl -fsSL --retry 3 -o "$deb.tmp" "$MIRROR/$file"
    if ! echo "$sha  $deb.tmp" | sha256sum -c --status; then
      echo "fetch-python: $file does not match the sha256 in sid's Packages ($sha)" >&2
      rm -f "$deb.tmp"
      return 1
    fi
    mv "$deb.tmp" "$deb"
  fi
  dpkg-deb -x "$deb" "$dest"
  echo "$version"
}

fetch_one() {
  local minor=$1
  local prefix="$PYTHONS/$minor"
  local python="$prefix/bin/python$minor"
  if "$python" -c '' 2>/dev/null; then
    echo "fetch-python: $python is installed ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
    return 0
  fi
  local start=$SECONDS
  install_needed_debs
  mkdir -p "$DOWNLOADS"
  local index
  index=$(packages_index)
  rm -rf "$prefix"
  mkdir -p "$prefix"
  local version
  for pkg in "python$minor-minimal" "libpython$minor-minimal" "libpython$minor-stdlib" \
    "libpython$minor-dev"; do
    version=$(fetch_deb "$pkg" "$prefix" "$index")
  done
  local libc
  libc=$(fetch_deb libc6 "$prefix/sid-libc" "$index")
  local libdir="$prefix/sid-libc/usr/lib/$MULTIARCH"
  local loader
  loader=$(find "$libdir" "$prefix/sid-libc/usr/lib64" -maxdepth 1 -name 'ld-linux*.so.*' 2>/dev/null | head -n 1)
  [ -n "$loader" ] || { echo "fetch-python: no dynamic loader in sid's libc6" >&2; exit 1; }
  patchelf --set-interpreter "$loader" --set-rpath "$libdir" "$prefix/usr/bin/python$minor"
  # bin/python3.X as a symlink to the file: getpath resolves it and finds the stdlib beside
  # usr/bin (a symlinked directory would not be resolved).
  mkdir -p "$prefix/bin"
  ln -sfn "../usr/bin/python$minor" "$python"
  ln -sfn usr/include "$prefix/include"
  echo "Debian python$minor $version, glibc $libc, from sid" >"$prefix/SOURCE"
  "$python" -c 'import ctypes, zlib, json, threading, trace, sys; print("fetch-python: installed", sys.version.split()[0], "at", sys.executable)'
  echo "fetch-python: $minor took $((SECONDS - start)) s"
}

for minor in "$@"; do
  [[ "$minor" =~ ^3\.[0-9]+$ ]] || usage
  fetch_one "$minor"
done
