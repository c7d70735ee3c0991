# Sourced by the scripts that fetch from Debian's archive (fetch-python.sh, build-python-ft.sh):
# sets MIRROR to the Debian mirror apt is configured with (its sources, deb822 or one-line),
# unless DEBIAN_MIRROR names one: the first URI of a source that serves the "main" archive.
apt_mirror() {
  local files=(/etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  {
    grep -hs '^URIs:' "${files[@]}" | awk '{print $2}'
    grep -hs '^deb ' "${files[@]}" | sed 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -v -e security -e '^$' | grep '/debian/*$' | head -1 | sed 's:/*$::' || true
}
MIRROR=${DEBIAN_MIRROR:-$(apt_mirror)}
if [ -z "$MIRROR" ]; then
  echo "$(basename "$0"): no Debian mirror in apt's sources; set DEBIAN_MIRROR to one" >&2
  exit 1
fi
