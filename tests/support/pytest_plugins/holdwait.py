"""pytest plugin (`-p holdwait`): at the session's end, write the pid to $HOLD_READY and wait
until $HOLD_DONE exists (at most $HOLD_SECONDS, default 60), so that `tracer snapshot --pid`
can read the finished process from outside. Without $HOLD_READY it does nothing."""

import os
import time


def pytest_sessionfinish(session, exitstatus):
    ready = os.environ.get("HOLD_READY")
    if not ready:
        return
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.rename(tmp, ready)  # the reader never sees a half-written pid
    end = time.monotonic() + float(os.environ.get("HOLD_SECONDS", "60"))
    while time.monotonic() < end and not os.path.exists(os.environ["HOLD_DONE"]):
        time.sleep(0.02)
