"""Soak workload: keeps creating new functions. Every round exec()s a fresh module-like
namespace defining functions (new code objects at new addresses, names drawn from a bounded
set of CHURN_TEMPLATES templates, 1000 by default), builds lambdas and nested closures, and
calls them all. Runs for WORKLOAD_SECONDS; prints "ready" once started.
"""
import os
import time

TEMPLATE = """
def churn_{n}(x):
    total = 0
    for i in range(x):
        total += (lambda v: v * {n})(i)
    return total

def outer_{n}(x):
    def inner(y):
        return churn_{n}(y) + {n}
    return inner(x)
"""


TEMPLATES = int(os.environ.get("CHURN_TEMPLATES", "1000"))


def round_of_churn(i):
    n = i % TEMPLATES
    namespace = {}
    exec(compile(TEMPLATE.format(n=n), "<churn-%d>" % n, "exec"), namespace)
    made = [lambda k=k: k + i for k in range(5)]
    return namespace["outer_%d" % n](20) + sum(f() for f in made)


def main():
    stop_at = time.monotonic() + float(os.environ.get("WORKLOAD_SECONDS", "10"))
    print("ready", flush=True)
    i = 0
    while time.monotonic() < stop_at:
        round_of_churn(i)
        i += 1


if __name__ == "__main__":
    main()
