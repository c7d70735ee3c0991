#!/usr/bin/env python3
"""Generate src/snapshot/opcodes/generated.rs: each CPython 3.11+'s opcodes, from its own metadata.

For every installed CPython 3.11 or later, this runs a probe *under that interpreter* which reads
its own opcode metadata and prints it as JSON:
  - names and numbers of every opcode, specialized forms included (`dis._all_opname`);
  - the base of each specialized form (`dis._specializations`), its inline-cache size
    (`opcode._inline_cache_entries`), and the jumps (`dis.hasjrel`/`hasjabs`/`hasjump`);
  - what quickening leaves in fresh code: every code object of a corpus (the interpreter's own
    top-level standard library modules, compiled, never run) is read back through
    `_co_code_adaptive`, recording per base opcode the first inline-cache word it starts with
    (the adaptive counter, or the POP_JUMP_IF_* branch history) and every opcode present.
The probe fails if a base opcode starts with two different first cache words.

From that, per opcode: its base, cache units, the initial first cache word of its base (None if
the corpus never showed it), and flags:
  EVIDENCE        a specialized form that fresh code never holds and that only execution makes
                  (its base has an inline cache, whose counter triggers it, or it is RESUME's:
                  3.13's RESUME_CHECK). 3.12's quickening-time superinstructions
                  (LOAD_FAST__LOAD_FAST...) are seen in fresh code and so are not evidence.
  JUMP, BACKWARD  a relative jump (backward when "JUMP_BACKWARD" is in its name, as dis decides).
  NO_FALLTHROUGH  never continues with the next instruction (returns, raises, unconditional jumps).
  MULTI_TARGET    FOR_ITER/SEND: an exhausted iterator or a finished sub-generator also lands one
                  or two instructions past the target (END_FOR/POP_TOP skipped).
  UNREADABLE      instrumented forms and ENTER_EXECUTOR: the original opcode is elsewhere, so a
                  code object holding one is left out of the snapshot.
  NON_RAISING     the version's own instruction metadata (3.13+: the installed
                  internal/pycore_opcode_metadata.h, `_PyOpcode_opcode_metadata`) gives neither the
                  opcode nor its base HAS_ERROR_FLAG, HAS_ERROR_NO_POP_FLAG, HAS_EVAL_BREAK_FLAG or
                  HAS_ESCAPES_FLAG,
                  and it does not suspend or leave the frame (SUSPENDS, NO_FALLTHROUGH): once
                  started it completes and continues in its frame. 3.12's metadata has no error
                  flags, so no 3.12 opcode gets this flag.
  BRANCH_HISTORY  a conditional jump whose first cache word is a branch history, *measured*: a
                  fresh function taking the jump once and falling through once must leave
                  (initial << 1 | taken) after each run (3.13's POP_JUMP_IF_*).
  EXTENDED_ARG, RESUME, LOAD_CONST: the opcodes the analysis needs to recognise by name.
The name lists below are the only per-name knowledge; numbers, sizes and forms come from the
version itself, so a new version is covered by running this again with it installed.

Which interpreters: TRACER_TEST_PYTHONS if set (':' or space separated), else
$PYENV_ROOT/versions/3.*/bin/python (PYENV_ROOT defaults to /root/.pyenv), then
target/pythons/3.*/bin/python3.* (tests/support/fetch-python.sh); one per minor, 3.12-3.15.

Usage:
  python3 src/snapshot/opcodes/generate.py              # rewrite generated.rs in place
  python3 src/snapshot/opcodes/generate.py -o OUT.rs    # elsewhere (tests/it/snapshot.rs does)
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
FIRST_MINOR = 11
LAST_MINOR = 15

NO_FALLTHROUGH = {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD",
                  "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP_BACKWARD_NO_JIT",
                  "JUMP_BACKWARD_JIT"}
MULTI_TARGET = {"FOR_ITER", "SEND"}
# Leave the frame with the next instruction not started: a generator suspended here, or made here
# and never run, resumes (if ever) at the next instruction.
SUSPENDS = {"YIELD_VALUE", "RETURN_GENERATOR", "INTERPRETER_EXIT"}
# Metadata flags that mean an instruction may not complete: it may raise, check the eval
# breaker (signal handlers, asynchronous exceptions), or call out to arbitrary code (which
# could switch stacks and never come back).
MAY_NOT_COMPLETE = ("HAS_ERROR_FLAG", "HAS_ERROR_NO_POP_FLAG", "HAS_EVAL_BREAK_FLAG",
                    "HAS_ESCAPES_FLAG")

# 3.11: a function warmed up by its loop (quickened at its 7th backward jump), and a branch it
# never takes holding every base opcode with a cache and each superinstruction.
WARMED = '''
def warmed(x):
    for i in range(9):
        pass
    if x:
        a, b = x
        c = a + b + 1
        d = 1 + c
        h = c + 2
        e = c
        for z in x:
            pass
        f = g = e
        x.attr = x.other
        x[a] = x[b]
        x.method(len(x), print)
        y = (CONSTS)
        return a < d
'''

PROBE = r'''
import dis, json, opcode, os, sys, sysconfig, types, warnings
warnings.simplefilter("ignore")
names = {}
for code, name in enumerate(dis._all_opname):
    if not name.startswith("<"):
        names[code] = name
opmap = {name: code for code, name in names.items()}
caches = opcode._inline_cache_entries
# By name: a dict in 3.13-3.14, a frozendict in 3.15; by number (a list) in 3.12.
if not isinstance(caches, (list, tuple)):
    cache_of = lambda name: caches.get(name, 0)
else:
    cache_of = lambda name: caches[opmap[name]] if opmap[name] < len(caches) else 0
base = {}
for b, forms in dis._specializations.items():
    for form in forms:
        base[form] = b
jumps = set(getattr(dis, "hasjrel", [])) | set(getattr(dis, "hasjump", []))
absolute = [names[c] for c in getattr(dis, "hasjabs", []) if c in names and c < 256]

def walk(co, out):
    out.append(co)
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            walk(c, out)

codes = []
lib = sysconfig.get_paths()["stdlib"]
for name in sorted(os.listdir(lib)):
    if name.endswith(".py"):
        try:
            with open(os.path.join(lib, name), "rb") as f:
                walk(compile(f.read(), name, "exec"), codes)
        except (SyntaxError, ValueError, OSError):
            pass
# 3.11 quickens a code object only once warmed up (8 RESUMEs and backward jumps), so compiled
# code is unquickened: quickening's own output is measured on a function warmed up by a loop,
# in the arm of a branch it never takes (WARMED's `if x:` body, which holds a use of every
# base opcode with a cache and of each quickening-time superinstruction).
regions = [(co, 0, None) for co in codes]
if sys.version_info[:2] == (3, 11):
    ns = {}
    many = ", ".join(f"x.n{i}" for i in range(300))  # over 256 names: EXTENDED_ARG
    exec(WARMED.replace("CONSTS", many), ns)
    warmed = ns["warmed"]
    warmed(False)
    co = warmed.__code__
    # The first instruction of the `if x:` body (4 lines below the `def`).
    start = min(s for s, _, l in co.co_lines() if l is not None and l >= co.co_firstlineno + 4)
    if co._co_code_adaptive[0] != opmap["RESUME_QUICK"]:
        sys.exit("the warmed function was not quickened")
    regions.append((co, start, None))
    quickened = co
else:
    quickened = None
initial, present = {}, set()
for co, start, _ in regions:
    raw = co._co_code_adaptive
    i = 0
    while i < len(raw):
        op = raw[i]
        name = names[op]
        b = base.get(name, name)
        n = cache_of(b)
        if i >= start:
            present.add(op)
            if n:
                word = int.from_bytes(raw[i + 2:i + 4], sys.byteorder)
                initial.setdefault(b, set()).add(word)
        i += 2 + 2 * n
if quickened is not None:
    # Every base with a cache, and every form quickening makes, must have been seen there.
    seen = set()
    raw = quickened._co_code_adaptive
    i = 0
    while i < len(raw):
        seen.add(names[raw[i]])
        i += 2 + 2 * cache_of(base.get(names[raw[i]], names[raw[i]]))
    # What ran after quickening (the loop) holds no cache; so every form in the function was
    # made by quickening (RESUME_QUICK, JUMP_BACKWARD_QUICK, the *_ADAPTIVE forms).
    present |= {opmap[n] for n in seen}
    missing = [b for b in dis._specializations if cache_of(b) and b + "_ADAPTIVE" not in seen]
    if missing:
        sys.exit("the warmed function misses %r" % missing)
bad = {b: sorted(v) for b, v in initial.items() if len(v) != 1}
if bad:
    sys.exit("several initial cache words: %r" % bad)
# The instruction metadata the interpreter was built with (3.13+ carries error flags).
metadata = {}
header = os.path.join(sysconfig.get_paths()["include"], "internal", "pycore_opcode_metadata.h")
if os.path.exists(header):
    text = open(header).read()
    start = text.find("_PyOpcode_opcode_metadata[")
    start = text.find("= {", start)
    end = text.find("};", start)
    import re
    for name, flags in re.findall(r"\[(\w+)\] = \{ true, \w+, ([^}]*)\}", text[start:end]):
        metadata[name] = [f.strip() for f in flags.split("|") if f.strip() not in ("", "0")]
has_error_flags = any("HAS_ERROR_FLAG" in f for f in metadata.values())

# Branch history, measured: each conditional jump with a cache, taken once and not once.
SNIPPETS = {
    "if x:\n  return 'body'\nreturn 'jump'": (1, 0),
    "if not x:\n  return 'body'\nreturn 'jump'": (0, 1),
    "if x is None:\n  return 'body'\nreturn 'jump'": (None, 0),
    "if x is not None:\n  return 'body'\nreturn 'jump'": (0, None),
}
history = {}
for body, values in SNIPPETS.items():
    ns = {}
    exec("def f(x):\n" + "\n".join("  " + l for l in body.split("\n")), ns)
    f = ns["f"]
    ins = [i for i in dis.get_instructions(f) if i.opname.startswith("POP_JUMP_IF")]
    if len(ins) != 1:
        continue
    name, at = ins[0].opname, ins[0].offset
    if not cache_of(name):
        continue
    word = lambda: int.from_bytes(f.__code__._co_code_adaptive[at + 2:at + 4], sys.byteorder)
    ok = True
    for value in values:
        before = word()
        taken = 1 if f(value) == "jump" else 0
        ok = ok and word() == ((before << 1) | taken) & 0xFFFF
    history[name] = history.get(name, True) and ok

print(json.dumps(dict(
    version=sys.version.split()[0], minor=sys.version_info[1],
    names={str(c): n for c, n in names.items()},
    base=base, caches={n: cache_of(base.get(n, n)) for n in names.values()},
    jumps=[names[c] for c in jumps if c in names and c < 256], absolute=absolute,
    initial={b: v.pop() for b, v in initial.items()},
    present=sorted(names[c] for c in present), codes=len(codes),
    metadata=metadata if has_error_flags else {},
    history=sorted(n for n, ok in history.items() if ok))))
'''


def find_pythons():
    listed = os.environ.get("TRACER_TEST_PYTHONS", "").strip()
    if listed:
        candidates = [p for p in re.split(r"[: \n]", listed) if p]
    else:
        root = os.environ.get("PYENV_ROOT", "/root/.pyenv")
        candidates = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python")))
        # Where tests/support/fetch-python.sh puts 3.14 and later.
        repo = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
        candidates += sorted(glob.glob(os.path.join(repo, "target", "pythons", "3.*", "bin",
                                                    "python3.*")))
    found = {}
    for python in candidates:
        try:
            out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError) as error:
            print(f"generate.py: skipping {python}: {error}", file=sys.stderr)
            continue
        major, minor = map(int, out.stdout.split())
        # Only versions the reader has a layout for (src/reader/layout/generate.py's MINORS).
        if major == 3 and FIRST_MINOR <= minor <= LAST_MINOR and minor not in found:
            found[minor] = python
    return found


def probe(python):
    out = subprocess.run([python, "-c", f"WARMED = {WARMED!r}\n" + PROBE], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"generate.py: probing {python} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def table(data):
    minor = data["minor"]
    if data["absolute"]:
        sys.exit(f"generate.py: 3.{minor} has absolute jumps {data['absolute']}: not handled")
    names = {int(c): n for c, n in data["names"].items()}
    opmap = {n: c for c, n in names.items()}
    present = set(data["present"])
    jumps = set(data["jumps"])
    rows = []
    for code in sorted(names):
        if code > 255:
            continue
        name = names[code]
        base = data["base"].get(name, name)
        caches = data["caches"][name]
        flags = []
        if name in data["base"]:
            runtime_only = caches > 0 or base == "RESUME"
            if runtime_only and name not in present:
                flags.append("EVIDENCE")
            elif not runtime_only and name not in present:
                print(f"generate.py: 3.{minor}: {name} is neither seen in fresh code nor made "
                      "by execution; left without evidence", file=sys.stderr)
        if base in jumps:
            flags.append("JUMP")
            if "JUMP_BACKWARD" in base:
                flags.append("BACKWARD")
        if base in NO_FALLTHROUGH:
            flags.append("NO_FALLTHROUGH")
        if base in MULTI_TARGET:
            flags.append("MULTI_TARGET")
        meta = data["metadata"]
        leaves_frame = base in SUSPENDS or (base in NO_FALLTHROUGH and base not in jumps)
        unreadable = name.startswith("INSTRUMENTED_") or name == "ENTER_EXECUTOR"
        if (name in meta and base in meta and not leaves_frame and not unreadable
                and not any(f in MAY_NOT_COMPLETE for f in meta[name] + meta[base])):
            flags.append("NON_RAISING")
        if base in data["history"]:
            flags.append("BRANCH_HISTORY")
        if name.startswith("INSTRUMENTED_") or name == "ENTER_EXECUTOR":
            flags.append("UNREADABLE")
        for special in ("EXTENDED_ARG", "RESUME", "LOAD_CONST"):
            if base == special:
                flags.append(special)
        initial = data["initial"].get(base)
        rows.append(
            f"        Op {{ code: {code}, name: \"{name}\", base: {opmap[base]}, "
            f"caches: {caches}, initial_cache: "
            f"{'None' if initial is None or caches == 0 else f'Some({initial:#06x})'}, "
            f"flags: {' | '.join(flags) if flags else '0'} }},")
    lines = [f"/// CPython 3.{minor}, from the {data['version']} interpreter's own metadata "
             f"({data['codes']} fresh code objects measured).",
             f"pub static PY3_{minor}: OpcodeTable = OpcodeTable {{",
             f"    version: PyVersion::new(3, {minor}),",
             "    ops: &["] + rows + ["    ],", "};"]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    found = find_pythons()
    if not found:
        sys.exit("generate.py: no CPython 3.11+ found")
    probed = {minor: probe(python) for minor, python in sorted(found.items())}
    versions = ", ".join(d["version"] for d in probed.values())
    out = ["// @generated by src/snapshot/opcodes/generate.py from each CPython's own opcode "
           "metadata.",
           "// Do not edit: regenerate with",
           "//     python3 src/snapshot/opcodes/generate.py",
           f"// Measured from: {versions}.",
           "",
           "use super::flags::*;",
           "use super::{Op, OpcodeTable};",
           "use crate::reader::PyVersion;",
           ""]
    for minor in sorted(probed):
        out.append(table(probed[minor]))
        out.append("")
    out.append("/// Every generated table, oldest version first.")
    out.append("pub static TABLES: &[&OpcodeTable] = &[" +
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
