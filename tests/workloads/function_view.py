# -*- coding: utf-8 -*-
"""Test workload for tests/it/function_view.rs: `target` is called six times (recursion, a second
thread, two call sites), with two statements on one line and locals of every type the
function view decodes: dicts (one with a deleted key, one nested, one past 255 slots) and
strings beyond Latin-1 (escaped or not by repr, and one whose character is printable in newer
versions only, which must stay opaque).

Every local is bound once per call before the statement that waits with it, so the value a
sampler reads while `target` waits on a statement is the value tracefunc records after that
statement. Each call waits on its statements (`wait` sleeps), so that samples find them.

  python function_view.py                 run it (under `tracer run --function target`)
  python function_view.py --truth OUT     run it under tracefunc (3.12+) and write its traces
                                          as JSON: [{"stack": ..., "trace": {snippet:
                                          [hits, {var: [[type, repr], ...]}]}}, ...]

Before 3.12 the ground truth is tests/support/settrace_locals.py running this file.
"""
import json
import sys
import threading
import time

PAUSE = 0.04


class Opaque:
    pass


def wait(value):
    time.sleep(PAUSE)
    return value


def target(tag, depth):
    a = wait(1); b = wait(2)
    number = -12345678901234567890123 * (depth + 1)
    ratio = 0.1 * (depth + 1)
    flag = depth % 2 == 0
    nothing = None
    text = "it's ünïcode " + tag
    raw = b"\x00bytes'" + bytes([depth])
    pair = (depth, "x")
    items = [1, 2.5, None, True, [depth]]
    mapping = {"k": depth, 2: b"v"}
    names = {"first": 1e16, "second": (1,)}
    long_text = "x" * 80
    thing = Opaque()
    wait((a, b, number, ratio, flag, nothing, text, raw, pair, items, mapping, names, long_text, thing))
    deleted = {"gone": 0, "kept": depth, "also": [depth]}
    del deleted["gone"]
    nested = {"inner": {"x": [depth], "é": None}, "t": (1, "é")}
    empty = {}
    big = dict.fromkeys(range(300), depth)
    wide = "héllo 世界"
    zero = "zero\u200bwidth"
    snake = "emoji 🐍"
    unassigned = "\u0378"
    newer = "\U0001fae8 is printable from 3.12 on"
    wait((deleted, nested, empty, big, wide, zero, snake, unassigned, newer))
    for i in range(2):
        wait(i)
    if depth > 0:
        inner = target(tag + "/inner", depth - 1)
    return wait(tag)


def run(role):
    if role == "main":
        helper = threading.Thread(target=run, args=("thread",))
        helper.start()
        target("main", 2)
        target("again", 0)
        helper.join()
    else:
        target(role, 1)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--truth":
        from tracefunc import tracefunc

        traces = tracefunc(run, "main", target_func=target)
        if traces.exc is not None:
            raise traces.exc
        out = [{"stack": stack, "trace": trace} for stack, trace in traces]
        with open(sys.argv[2], "w") as f:
            json.dump(out, f, indent=1)
    else:
        # Let `tracer run` attach before the first call (recall, not precision, needs it).
        time.sleep(0.5)
        run("main")


if __name__ == "__main__":
    main()
