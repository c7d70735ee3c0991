"""Ground truth for the function view's values where tracefunc cannot run (before 3.12: no
sys.monitoring): run a script under sys.settrace, in every thread, and record the locals of
every call of the functions named NAME as tracefunc shows values, `(type(v).__name__,
repr(v) cut to 50 characters as s[:47] + "...")`, at each of its line events and at its return.

Usage: python settrace_locals.py OUT.json NAME SCRIPT [ARGS...]

Writes {"lines": {line: {variable: [[type, repr], ...]}}}: per line of the function, the
distinct values each local held when the line was about to run (and, under the line that
returned, at the return).
"""

import json
import runpy
import sys
import threading

MAX_REPR = 50


def cut(text):
    return text if len(text) <= MAX_REPR else text[:MAX_REPR - 3] + "..."


def main():
    out_path, name, script = sys.argv[1], sys.argv[2], sys.argv[3]
    lines = {}
    lock = threading.Lock()

    def record(frame):
        seen = []
        for variable, value in frame.f_locals.items():
            try:
                shown = cut(repr(value))
            except Exception as error:  # a repr that raises is not something we decode
                shown = "<repr failed: %s>" % type(error).__name__
            seen.append((variable, type(value).__name__, shown))
        with lock:
            per_line = lines.setdefault(frame.f_lineno, {})
            for variable, type_name, shown in seen:
                values = per_line.setdefault(variable, [])
                if [type_name, shown] not in values:
                    values.append([type_name, shown])

    def local_trace(frame, event, arg):
        if event in ("line", "return"):
            record(frame)
        return local_trace

    def global_trace(frame, event, arg):
        if event == "call" and frame.f_code.co_name == name:
            return local_trace
        return None

    sys.argv = [script] + sys.argv[4:]
    threading.settrace(global_trace)
    sys.settrace(global_trace)
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.settrace(None)
        threading.settrace(None)
    with open(out_path, "w") as f:
        json.dump({"lines": lines}, f, indent=1)


if __name__ == "__main__":
    main()
