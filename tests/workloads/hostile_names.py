"""A hostile target: its code objects carry file names chosen to make a tracer write outside its
output directory or read files the target itself cannot read.

Environment: SECRET (a file this process cannot read), LINK (a symlink this process made to
it), WORKLOAD_SECONDS. Prints "ready" once every function exists, then runs them all in a loop.
"""
import os
import sys
import time

SOURCE = "def spin(n):\n    t = 0\n    for i in range(n):\n        t += i\n    return t\n"

NAMES = [
    "../../evil.py",
    "../" * 40 + "tmp/escape.py",
    "/../../../tmp/evil_abs.py",
    os.environ["SECRET"],
    os.environ["LINK"],
    "/proc/self/environ",
    "/etc/shadow",
    "a\x00b.py",
    "x" * 10000 + ".py",
    "/" + "d/" * 3000 + "deep.py",
    ".py",
    "/..",
]


def renamed(code, name):
    consts = tuple(renamed(c, name) if hasattr(c, "co_code") else c for c in code.co_consts)
    return code.replace(co_filename=name, co_consts=consts)


spins = []
for name in NAMES:
    namespace = {}
    exec(renamed(compile(SOURCE, "placeholder", "exec"), name), namespace)
    spins.append(namespace["spin"])

print("ready", flush=True)
deadline = time.time() + float(os.environ.get("WORKLOAD_SECONDS", "5"))
while time.time() < deadline:
    for spin in spins:
        spin(2000)
sys.exit(0)
