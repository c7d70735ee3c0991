"""Ground truth of what ran, counted by the stdlib's own trace.Trace, in a separate run.

Usage: python trace_truth.py OUT.pickle SCRIPT [ARGS...]

`python -m trace` records one kind per run (--count, --listfuncs or --trackcalls) and removes
its hook when the script returns, before the interpreter's shutdown runs threading._shutdown;
code run then is real but invisible to it. This drives trace.Trace's own methods for all three
kinds at once and keeps the hook installed until atexit (which runs after threading._shutdown),
then writes trace's pickle (counts, calledfuncs, callers). Python 3.8+.

A child forked by the script keeps the hook (a thread's trace function survives fork) and
writes its own pickle, OUT.PID, if it exits through the interpreter's exit (sys.exit, not
os._exit): its counts are its parent's up to the fork plus its own.
"""
import os
import atexit
import pickle
import runpy
import sys
import threading
import trace


# CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR: frames that resume mid-line.
RESUMABLE = 0x20 | 0x100 | 0x200


def main():
    out_path, script = sys.argv[1], sys.argv[2]
    out = {"path": out_path}
    os.register_at_fork(
        after_in_child=lambda: out.update(path="%s.%d" % (out_path, os.getpid()))
    )
    sys.argv = sys.argv[2:]
    tracer = trace.Trace(count=1, trace=0)

    def globaltrace(frame, why, arg):
        if why == "call":
            # A call from C with no Python caller (threading._shutdown at exit, an atexit
            # handler) has no edge; trace's own method would fail on it, and a trace function
            # that raises is removed for good.
            if frame.f_back is not None:
                tracer.globaltrace_trackcallers(frame, why, arg)
            tracer.globaltrace_countfuncs(frame, why, arg)
            code = frame.f_code
            if code.co_flags & RESUMABLE and frame.f_lineno != code.co_firstlineno:
                # A generator resumed where it last suspended runs the rest of that line, but
                # trace sends no line event for it; one started before the hook (certifi's
                # context manager, entered at startup and exited by its atexit handler) would
                # run a line trace never counts. A sampler sees it: count it here, once (a
                # line reached under the hook already has its count).
                tracer.counts.setdefault((code.co_filename, frame.f_lineno), 1)
        return tracer.globaltrace_lt(frame, why, arg)

    def dump():
        # Handlers registered before this one (e.g. certifi's at startup) run after it: run
        # them now, still traced, so that what they execute is in the truth too.
        atexit.unregister(dump)
        atexit._run_exitfuncs()
        sys.settrace(None)
        threading.settrace(None)
        results = tracer.results()
        with open(out["path"], "wb") as f:
            pickle.dump((results.counts, results.calledfuncs, results.callers), f, 2)

    atexit.register(dump)
    threading.settrace(globaltrace)
    sys.settrace(globaltrace)
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        pass


if __name__ == "__main__":
    main()
