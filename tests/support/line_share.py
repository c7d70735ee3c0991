"""Ground truth for "share of run time per line", measured in-process in a separate run.

Usage: python line_share.py OUT.json SCRIPT [ARGS...]

Runs SCRIPT as __main__ while a background thread samples sys._current_frames() every
millisecond and records, per sample, the set of (filename, lineno) on any thread's stack (every
frame counts, as tracer counts them). Writes {"samples": N, "lines": [[file, line, n], ...]}.
The interpreter computes f_lineno itself, so this is independent of any out-of-process reader.
Works on Python 2.7 and 3.x.
"""
import json
import runpy
import sys
import threading
import time

INTERVAL = 0.001


def main():
    out_path, script = sys.argv[1], sys.argv[2]
    sys.argv = sys.argv[2:]
    counts = {}
    state = {"samples": 0, "stop": False}
    me = []

    def sampler():
        me.append(threading.current_thread().ident)
        while not state["stop"]:
            seen = set()
            for ident, frame in sys._current_frames().items():
                if ident in me:
                    continue
                # A frame called but not started stands on its def line (3.10-: f_lasti -1;
                # 3.11+: prologue or RETURN_GENERATOR); it has not run yet: skip it.
                code = frame.f_code
                if frame.f_lineno == code.co_firstlineno and code.co_name != "<module>":
                    frame = frame.f_back
                depth = 0
                while frame is not None and depth < 10000:
                    # f_lineno is None where the code has no line (3.10+): nothing to count.
                    if frame.f_lineno is not None:
                        seen.add((frame.f_code.co_filename, frame.f_lineno))
                    frame = frame.f_back
                    depth += 1
            for key in seen:
                counts[key] = counts.get(key, 0) + 1
            state["samples"] += 1
            time.sleep(INTERVAL)

    # Let the sampler thread take the GIL often enough to sample every millisecond or so.
    if hasattr(sys, "setswitchinterval"):
        sys.setswitchinterval(0.0002)
    thread = threading.Thread(target=sampler)
    thread.daemon = True
    thread.start()
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        pass
    finally:
        state["stop"] = True
        thread.join()
        with open(out_path, "w") as out:
            json.dump(
                {
                    "samples": state["samples"],
                    "lines": [[f, l, n] for (f, l), n in sorted(counts.items())],
                },
                out,
            )


if __name__ == "__main__":
    main()
