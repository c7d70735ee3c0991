"""The cases each snapshot rule is checked on (tests/it/snapshot_rules.rs): functions called
once, never, many times; calls that raised; generators; loops. Run once, print "ready", wait
for a line (or EOF) on stdin. The test reads which function is which by name."""
import sys


class Box:
    def __init__(self, value):
        self.value = value


def called_once(x):
    y = x.value + 1
    return y


def never_called(x):
    y = x.value + 1
    return y


def called_many(x):
    y = x.value + 1
    return y


def raised_once(x):
    y = x.value + 1
    raise ValueError(y)


def raised_many(x):
    y = x.value + 1
    raise ValueError(y)


def few_yields(x):
    yield x.value
    yield x.value + 1


def many_yields(x):
    for i in range(20):
        yield x.value + i


def for_loop(n):
    total = 0
    for i in range(n):
        total += i
    return total


def while_loop(n):
    i = 0
    while i < n:
        i += 1
    return i


def main():
    box = Box(1)
    called_once(box)
    for _ in range(20):
        called_many(box)
    for _ in range(1 if True else 0):
        try:
            raised_once(box)
        except ValueError:
            pass
    for _ in range(20):
        try:
            raised_many(box)
        except ValueError:
            pass
    list(few_yields(box))
    list(many_yields(box))
    for_loop(20)
    while_loop(20)


main()
print("ready", flush=True)
sys.stdin.readline()
