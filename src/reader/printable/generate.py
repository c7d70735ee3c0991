#!/usr/bin/env python3
"""Generate src/reader/printable/generated.rs: which code points `repr(str)` shows as they are.

`repr()` of a `str` escapes a non-ASCII character unless `ch.isprintable()`, which follows the
Unicode database of the interpreter's version (Unicode 12.1 in 3.8 up to 16.0 in 3.14). So
that the value decoder (src/reader/values/) never shows a repr a given target would not
produce, this asks every supported interpreter, 3.8-3.15, for `chr(c).isprintable()` over all
code points and writes two tables of inclusive ranges:

  PRINTABLE_IN_EVERY_VERSION    printable in every version found;
  UNPRINTABLE_IN_EVERY_VERSION  not printable in any version found (escaped by all).

A code point in neither (assigned by a newer Unicode, or whose category changed) is left out:
the decoder shows such a string as `<str at 0x...>`.

Which interpreters (as src/reader/layout/generate.py finds them):
  - TRACER_TEST_PYTHONS, if set: interpreter paths separated by ':' or spaces;
  - otherwise $PYENV_ROOT/versions/3.X.*/bin/python (PYENV_ROOT defaults to /root/.pyenv),
    then target/pythons/3.X/bin/python3.X (`make pythons-new` installs 3.14 there).
  One per minor version, the first found winning. The committed file must be generated from
  all of 3.8-3.15; versions not found are reported on stderr and named in the output's header.

Usage:
  python3 src/reader/printable/generate.py                 # rewrite generated.rs in place
  python3 src/reader/printable/generate.py -o /tmp/gen.rs  # write elsewhere (the tests do)
"""

import argparse
import glob
import os
import re
import subprocess
import sys

MINORS = range(8, 16)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DEFAULT_OUTPUT = os.path.join(HERE, "generated.rs")
LAST_CODE_POINT = 0x10FFFF

# Run inside each interpreter: its version, its Unicode version, then the code points where
# isprintable() changes, starting from "not printable" at code point 0.
PROBE = r"""
import sys, unicodedata
print(sys.version_info[0], sys.version_info[1], sys.version.split()[0], unicodedata.unidata_version)
changes, state = [], False
for c in range(0x110000):
    p = chr(c).isprintable()
    if p != state:
        changes.append(c)
        state = p
print(" ".join(map(str, changes)))
"""


def candidates():
    listed = os.environ.get("TRACER_TEST_PYTHONS", "").strip()
    if listed:
        return [p for p in re.split(r"[: \n]", listed) if p]
    root = os.environ.get("PYENV_ROOT", "/root/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python")))
    found += sorted(glob.glob(os.path.join(REPO, "target", "pythons", "3.*", "bin", "python3.*")))
    return found


def measure():
    """{minor: (full version, Unicode version, set of printable code points as ranges)}."""
    found = {}
    for python in candidates():
        try:
            out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True,
                                 timeout=120, check=True).stdout.split("\n")
        except (OSError, subprocess.SubprocessError) as error:
            print(f"generate.py: skipping {python}: {error}", file=sys.stderr)
            continue
        major, minor, full, unicode = out[0].split()
        if int(major) != 3 or int(minor) not in MINORS or int(minor) in found:
            continue
        changes = [int(c) for c in out[1].split()]
        found[int(minor)] = (full, unicode, to_ranges(changes))
    return found


def to_ranges(changes):
    """Inclusive (first, last) ranges where the value is True, from its change points."""
    bounds = changes + ([LAST_CODE_POINT + 1] if len(changes) % 2 else [])
    return [(bounds[i], bounds[i + 1] - 1) for i in range(0, len(bounds), 2)]


def complement(ranges):
    out, next_start = [], 0
    for first, last in ranges:
        if first > next_start:
            out.append((next_start, first - 1))
        next_start = last + 1
    if next_start <= LAST_CODE_POINT:
        out.append((next_start, LAST_CODE_POINT))
    return out


def intersect(a, b):
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        first, last = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if first <= last:
            out.append((first, last))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def rust_table(name, doc, ranges):
    lines = [f"/// {doc}", "#[rustfmt::skip]", f"pub static {name}: &[(u32, u32)] = &["]
    row = []
    for first, last in ranges:
        row.append(f"(0x{first:x}, 0x{last:x}),")
        if len(row) == 5:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append("];")
    return "\n".join(lines)


def render(found):
    minors = sorted(found)
    printable = None
    unprintable = None
    for minor in minors:
        ranges = found[minor][2]
        printable = ranges if printable is None else intersect(printable, ranges)
        others = complement(ranges)
        unprintable = others if unprintable is None else intersect(unprintable, others)
    sources = ", ".join(f"{found[m][0]} (Unicode {found[m][1]})" for m in minors)
    undecided = (LAST_CODE_POINT + 1 - sum(b - a + 1 for a, b in printable)
                 - sum(b - a + 1 for a, b in unprintable))
    out = [
        "// @generated by src/reader/printable/generate.py from each CPython's str.isprintable().",
        "// Do not edit: regenerate with",
        "//     python3 src/reader/printable/generate.py",
        f"// Versions: {' '.join(f'3.{m}' for m in minors)}",
        f"// Measured from: {sources}.",
        f"// {undecided} code points are printable in some of these versions only.",
        "",
        "use crate::reader::PyVersion;",
        "",
        "/// The versions measured: the tables hold for each of them.",
        "#[rustfmt::skip]",
        "pub static VERSIONS: &[PyVersion] = &[" + ", ".join(f"PyVersion::new(3, {m})" for m in minors) + "];",
        "",
        rust_table("PRINTABLE_IN_EVERY_VERSION",
                   "Code points `str.isprintable()` in every version: inclusive, ascending.",
                   printable),
        "",
        rust_table("UNPRINTABLE_IN_EVERY_VERSION",
                   "Code points not `str.isprintable()` in any version: inclusive, ascending.",
                   unprintable),
    ]
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT,
                        help="where to write the Rust file (default: generated.rs beside this)")
    args = parser.parse_args()
    found = measure()
    for minor in MINORS:
        if minor not in found:
            print(f"generate.py: no CPython 3.{minor} found; left out", file=sys.stderr)
    if not found:
        sys.exit("generate.py: no CPython 3.8-3.15 found at all")
    with open(args.output, "w") as f:
        f.write(render(found))
    print(f"generate.py: wrote {args.output} (3.{', 3.'.join(str(m) for m in sorted(found))})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
