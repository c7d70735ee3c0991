"""CPython's own out-of-process stack reader, as a reference for tests/it/reader_differential.rs.

Usage: python3.X remote_unwinder.py PID   (3.X the target's own version: _remote_debugging, the
module under `python -m profiling.sampling`, reads only the minor version it belongs to)

Prints `ready` once its RemoteUnwinder is set up, then, for each line read from stdin, one JSON
line: {"stacks": [[[filename, funcname, lineno], ...innermost first], ...one per thread]} for
every thread of every interpreter, or {"error": "..."} when that read failed (a thread caught
while being created, say). The test pauses the target around each request. Frame caching
(cache_frames) is left off: that mode writes into the target.
"""

import json
import sys

import _remote_debugging


def threads(trace):
    """3.15 groups the threads by interpreter (InterpreterInfo.threads); 3.14 lists them."""
    for item in trace:
        if hasattr(item, "threads"):
            yield from item.threads
        else:
            yield item


def line_of(frame):
    """3.15: frame.location.lineno; 3.14: frame.lineno (None when there is no line)."""
    location = getattr(frame, "location", None)
    line = location.lineno if location is not None else getattr(frame, "lineno", None)
    return line or 0


def main():
    pid = int(sys.argv[1])
    unwinder = _remote_debugging.RemoteUnwinder(pid, all_threads=True)
    print("ready", flush=True)
    for _request in sys.stdin:
        try:
            stacks = [
                [[frame.filename, frame.funcname, line_of(frame)] for frame in thread.frame_info]
                for thread in threads(unwinder.get_stack_trace())
            ]
            print(json.dumps({"stacks": stacks}), flush=True)
        except Exception as error:  # noqa: BLE001 - reported to the test, which counts them
            print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)


if __name__ == "__main__":
    main()
