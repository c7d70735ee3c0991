"""Ground truth for src/reader/line_proof: run a module's `run_all()` under `sys.settrace` with
per-opcode events, and record, for every instruction a frame stood on, the lines that had a
line event in that frame so far (what the stdlib's `trace` would have counted). Prints JSON: per
code object its `co_code`, `co_lnotab` (hex), `co_firstlineno` and the observations
`[offset, [lines seen]]`, deduplicated.

Usage: python line_proof_check.py MODULE_PATH
"""
import importlib.util
import json
import sys

path = sys.argv[1]
spec = importlib.util.spec_from_file_location("constructs", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

codes = {}
seen = {}


def tracer(frame, event, arg):
    if frame.f_code.co_filename != path:
        return None
    frame.f_trace_opcodes = True
    if event == "call" and frame.f_lasti < 0:
        seen[id(frame)] = set()  # a new frame (a generator resuming keeps what it saw)
    lines = seen.setdefault(id(frame), set())
    if event == "line":
        lines.add(frame.f_lineno)
    elif event == "opcode":
        code = frame.f_code
        key = (code.co_name, code.co_firstlineno)
        entry = codes.setdefault(key, {
            "name": code.co_name,
            "code": code.co_code.hex(),
            "lnotab": code.co_lnotab.hex(),
            "first_line": code.co_firstlineno,
            "observations": set(),
        })
        entry["observations"].add((frame.f_lasti, tuple(sorted(lines))))
    return tracer


sys.settrace(tracer)
module.run_all()
sys.settrace(None)
print(json.dumps([dict(e, observations=sorted(e["observations"])) for e in codes.values()]))
