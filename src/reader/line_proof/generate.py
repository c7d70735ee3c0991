#!/usr/bin/env python3
"""Generate src/reader/line_proof/generated.rs: how control flows through CPython 3.8-3.9
bytecode, from each interpreter's own `opcode` module.

The line a 3.8-3.9 frame stands on is looked up in `co_lnotab`, where an instruction that the
compiler gave no line of its own inherits the line before it: a `with` block's cleanup (run
when the body raised) stands on the body's last line, `END_ASYNC_FOR` on the async loop's
last body line. src/reader/line_proof/mod.rs reports a frame only on a line its position
proves ran, by the dominators of the code's control-flow graph, which needs per opcode:

  REL_JUMP        its argument is a forward jump (`opcode.hasjrel`): target = next + arg;
  ABS_JUMP        its argument is an absolute target (`opcode.hasjabs`);
  NO_FALLTHROUGH  never continues with the next instruction (returns, raises, unconditional
                  jumps);
  HANDLER         pushes an exception handler at its target (SETUP_FINALLY, SETUP_WITH,
                  SETUP_ASYNC_WITH): the target is reached from inside the block it protects;
  CALL_FINALLY    3.8: jumps to a `finally` block that returns after itself (through
                  END_FINALLY or POP_FINALLY);
  END_FINALLY     3.8: may continue, re-raise, or return to after any CALL_FINALLY;
  EXTENDED_ARG, and `HAVE_ARGUMENT` (opcodes below it ignore their argument byte).

The names below are the only per-name knowledge; numbers and jump kinds come from the versions
themselves. Which interpreters: TRACER_TEST_PYTHONS if set (':' or space separated), else
$PYENV_ROOT/versions/3.*/bin/python (PYENV_ROOT defaults to /root/.pyenv); one per minor,
3.8 and 3.9.

Usage:
  python3 src/reader/line_proof/generate.py               # rewrite generated.rs in place
  python3 src/reader/line_proof/generate.py -o OUT.rs     # elsewhere (tests/it/linetable.rs does)
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "generated.rs")
MINORS = (8, 9)

NO_FALLTHROUGH = {"RETURN_VALUE", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD", "JUMP_ABSOLUTE"}
HANDLER = {"SETUP_FINALLY", "SETUP_WITH", "SETUP_ASYNC_WITH"}
SPECIAL = {"CALL_FINALLY", "END_FINALLY", "EXTENDED_ARG"}

PROBE = r'''
import json, opcode, sys
print(json.dumps(dict(
    version=sys.version.split()[0], minor=sys.version_info[1],
    opmap=opcode.opmap, have_argument=opcode.HAVE_ARGUMENT,
    hasjrel=[opcode.opname[c] for c in opcode.hasjrel],
    hasjabs=[opcode.opname[c] for c in opcode.hasjabs])))
'''


def find_pythons():
    listed = os.environ.get("TRACER_TEST_PYTHONS", "").strip()
    if listed:
        candidates = [p for p in re.split(r"[: \n]", listed) if p]
    else:
        root = os.environ.get("PYENV_ROOT", "/root/.pyenv")
        candidates = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python")))
        candidates += [f"/usr/bin/python3.{m}" for m in MINORS]
    found = {}
    for python in candidates:
        try:
            out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            continue
        major, minor = map(int, out.stdout.split())
        if major == 3 and minor in MINORS and minor not in found:
            found[minor] = python
    return found


def probe(python):
    out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit(f"generate.py: probing {python} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def table(data):
    minor = data["minor"]
    for name in NO_FALLTHROUGH | HANDLER:
        if name not in data["opmap"] and name != "RERAISE":
            sys.exit(f"generate.py: 3.{minor} has no {name}")
    rows = []
    for name, code in sorted(data["opmap"].items(), key=lambda item: item[1]):
        flags = []
        if name in data["hasjrel"]:
            flags.append("REL_JUMP")
        if name in data["hasjabs"]:
            flags.append("ABS_JUMP")
        if name in NO_FALLTHROUGH:
            flags.append("NO_FALLTHROUGH")
        if name in HANDLER:
            flags.append("HANDLER")
        if name in SPECIAL:
            flags.append(name)
        rows.append(f"        FlowOp {{ code: {code}, name: \"{name}\", "
                    f"flags: {' | '.join(flags) if flags else '0'} }},")
    return "\n".join([
        f"/// CPython 3.{minor}, from the {data['version']} interpreter's `opcode` module.",
        f"pub static PY3_{minor}: FlowTable = FlowTable {{",
        f"    version: PyVersion::new(3, {minor}),",
        f"    have_argument: {data['have_argument']},",
        "    ops: &["] + rows + ["    ],", "};"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    found = find_pythons()
    missing = [f"3.{m}" for m in MINORS if m not in found]
    if missing:
        sys.exit(f"generate.py: no CPython {', '.join(missing)} found (all of 3.8-3.9 needed)")
    probed = {minor: probe(python) for minor, python in sorted(found.items())}
    versions = ", ".join(d["version"] for d in probed.values())
    out = ["// @generated by src/reader/line_proof/generate.py from each CPython's `opcode` module.",
           "// Do not edit: regenerate with",
           "//     python3 src/reader/line_proof/generate.py",
           f"// Measured from: {versions}.",
           "",
           "use super::flags::*;",
           "use super::{FlowOp, FlowTable};",
           "use crate::reader::PyVersion;",
           ""]
    for minor in sorted(probed):
        out.append(table(probed[minor]))
        out.append("")
    out.append("/// Every generated table, oldest version first.")
    out.append("pub static TABLES: &[&FlowTable] = &[" +
               ", ".join(f"&PY3_{m}" for m in sorted(probed)) + "];")
    text = "\n".join(out) + "\n"
    rustfmt = shutil.which("rustfmt")
    if rustfmt is None:
        sys.exit("generate.py: rustfmt not found (the committed file is rustfmt-formatted)")
    formatted = subprocess.run([rustfmt, "--edition", "2021", "--emit", "stdout", "--quiet"],
                               input=text, capture_output=True, text=True)
    if formatted.returncode != 0:
        sys.exit(f"generate.py: rustfmt failed:\n{formatted.stderr}")
    with open(args.output, "w") as f:
        f.write(formatted.stdout)
    print(f"generate.py: wrote {args.output} ({versions})", file=sys.stderr)


if __name__ == "__main__":
    main()
