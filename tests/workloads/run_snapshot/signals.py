"""A child that handles SIGUSR1 and stops itself with SIGSTOP, for tests/it/run_snapshot.rs:
under `tracer run --snapshot` (ptraced) both must behave as without it."""
import os
import signal
import sys

handled = []
signal.signal(signal.SIGUSR1, lambda *_: handled.append(1))
os.kill(os.getpid(), signal.SIGUSR1)
print("stopping", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
print("continued, handled %d" % len(handled), flush=True)
sys.exit(3)
