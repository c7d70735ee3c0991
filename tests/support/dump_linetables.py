"""Dump the line tables of many code objects with the interpreter's own answers, as JSON lines.

Usage: python dump_linetables.py WORKLOAD.py...

Compiles the given files, a fixed list of stdlib modules and a generated file of edge cases
(long line jumps, large columns, decorators, multi-line calls, cleanup code), and prints one
JSON object per code object (recursively through co_consts):

  {"kind": "code", "where": "file:name", "table": hex of co_lnotab (3.8-3.9) or co_linetable,
   "first_line": co_firstlineno, "code_len": len(co_code) in bytes,
   "addr2line": [line or null for each code unit, offsets 0, 2, 4, ...],
   "before_start": the line for offset -2,
   "lines": list(co_lines()) (3.10+) or null, "positions": list(co_positions()) (3.11+) or null}

Ground truth: "addr2line" is CPython's own `PyCode_Addr2Line(code, offset)`, called through
ctypes. That is the function `frame.f_lineno` calls when no trace function is set, on every
version: `PyFrame_GetLineNumber` passes `f_lasti` (3.8-3.9) or `f_lasti * 2` (3.10), and
`PyUnstable_InterpreterFrame_GetLine` / `_PyInterpreterFrame_GetLine` pass the frame's
instruction offset times 2 (3.11+). So it is not a reimplementation of the format (such as
`dis.findlinestarts` on 3.8-3.9, which only yields where lines start) but the interpreter's
answer itself, for every offset a frame can stand on, cache entries included (3.11 and 3.12
leave a caller's `prev_instr` on its CALL's last cache entry). -1 (no line) is written as null.

Then one object per live frame captured by a small probe (`"kind": "frame"`): suspended
generators and coroutines, a generator not yet started, and callers standing on a call, with
`f_lasti` (bytes, -1 before the first instruction, as Python exposes it on every version),
`f_lineno` and the frame's code table, to check the frame-offset conventions end to end.
"""
import ctypes
import importlib.util
import json
import sys
import types
import warnings

STDLIB_MODULES = [
    "_pydecimal", "_pyio", "abc", "argparse", "ast", "base64", "bisect", "calendar", "cmd",
    "codecs", "collections", "colorsys", "configparser", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "difflib", "dis", "email.message", "enum", "fnmatch",
    "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip", "heapq", "hmac",
    "html.parser", "http.client", "inspect", "ipaddress", "json.decoder", "json.encoder",
    "logging", "mimetypes", "ntpath", "operator", "optparse", "os", "pathlib", "pickle",
    "pprint", "queue", "random", "re", "shlex", "shutil", "statistics", "string",
    "subprocess", "tarfile", "textwrap", "threading", "tokenize", "traceback", "typing",
    "unittest.case", "urllib.parse", "uuid", "warnings", "zipfile",
]

addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int


def edge_cases():
    """Source exercising the corners of every format."""
    wide = "a + " * 1200
    return "\n".join([
        "import functools",
        "",
        "@functools.lru_cache(maxsize=None)",
        "@staticmethod",
        "def decorated(a,",
        "              b=(1,",
        "                 2)):",
        "    return (a +",
        "            b[0])",
        "",
        "def far_apart():",
        "    x = 1",
    ] + [""] * 300 + [
        "    y = 2",
    ] + [""] * 70000 + [
        "    return x + y",
        "",
        "def wide_line(a):",
        "    b = a + (" + wide + "a)",
        "    return b",
        "",
        "def backwards():",
        "    return call_me(",
        "        1,",
        "        2,",
        "    )",
        "",
        "def cleanup(path):",
        "    try:",
        "        with open(path) as f:",
        "            return f.read()",
        "    except OSError as e:",
        "        raise ValueError(e)",
        "    finally:",
        "        print('done')",
        "",
        "def loops(n):",
        "    total = 0",
        "    for i in range(n):",
        "        if i % 2:",
        "            continue",
        "        while total < i:",
        "            total += 1",
        "        else:",
        "            pass",
        "    return [j for j in range(n) if j] + list(k * 2 for k in range(n))",
        "",
        "def closures():",
        "    cell = 1",
        "    def inner():",
        "        nonlocal cell",
        "        cell += 1",
        "        return lambda: cell",
        "    return inner",
        "",
        "async def coroutine(x):",
        "    async with x as y:",
        "        async for z in y:",
        "            await z",
        "",
        "class Klass:",
        "    attribute = [",
        "        1,",
        "    ]",
        "    def method(self): return self",
        "",
        "def generator():",
        "    yield 1",
        "    yield from range(3)",
        "",
        "x = 'caf\u00e9'; y = '\U0001f600' + x; z = y + x",
        "",
    ])


def code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from code_objects(const)


def line_or_none(line):
    return None if line < 0 else line


def table_of(code):
    return code.co_linetable if sys.version_info >= (3, 10) else code.co_lnotab


def dump_code(code, where):
    code_len = len(code.co_code)
    record = {
        "kind": "code",
        "where": "%s:%s" % (where, code.co_name),
        "table": table_of(code).hex(),
        "first_line": code.co_firstlineno,
        "code_len": code_len,
        "addr2line": [line_or_none(addr2line(code, o)) for o in range(0, code_len, 2)],
        "before_start": addr2line(code, -2),
        "lines": list(code.co_lines()) if hasattr(code, "co_lines") else None,
        "positions": list(code.co_positions()) if hasattr(code, "co_positions") else None,
    }
    print(json.dumps(record))


def dump_frame(frame, label):
    code = frame.f_code
    record = {
        "kind": "frame",
        "where": "%s:%s" % (label, code.co_name),
        "table": table_of(code).hex(),
        "first_line": code.co_firstlineno,
        "code_len": len(code.co_code),
        "f_lasti": frame.f_lasti,
        "f_lineno": frame.f_lineno,
    }
    print(json.dumps(record))


def probe_frames():
    def gen():
        yield 1
        for i in range(3):
            yield i

    async def coro():
        await types.coroutine(lambda: (yield))()

    def callee():
        frame = sys._getframe(1)
        while frame is not None and frame.f_code is not probe_frames.__code__:
            dump_frame(frame, "caller")
            frame = frame.f_back

    def caller(n):
        if n:
            return [caller(n - 1)]
        return callee()

    not_started = gen()
    dump_frame(not_started.gi_frame, "not started")
    suspended = gen()
    for steps in range(4):
        next(suspended)
        dump_frame(suspended.gi_frame, "suspended %d" % steps)
    c = coro()
    dump_frame(c.cr_frame, "coroutine not started")
    c.send(None)
    dump_frame(c.cr_frame, "coroutine suspended")
    c.close()
    caller(3)
    try:
        raise KeyError
    except KeyError:
        caller(0)


def main():
    warnings.simplefilter("ignore")
    sources = []
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            sources.append((path, f.read()))
    for name in STDLIB_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, "rb") as f:
            sources.append((spec.origin, f.read()))
    sources.append(("<edge cases>", edge_cases()))
    for where, source in sources:
        module = compile(source, where, "exec", dont_inherit=True)
        for code in code_objects(module):
            dump_code(code, where)
    probe_frames()


if __name__ == "__main__":
    main()
