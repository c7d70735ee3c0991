"""Control-flow shapes whose pre-3.10 line numbers mislead (src/reader/line_proof): a `with`
body that raises before its last line, an `async for` over an exhausted iterator, try/finally
with return, break and continue, loops that end in an `if`, nested handlers. Each function
runs its shapes with every branch taken; `run_all()` calls them all.
"""
import contextlib


@contextlib.contextmanager
def swallowing():
    try:
        yield
    except ValueError:
        pass


def with_raising():
    with swallowing():
        raise ValueError("body")
        print("never")  # never runs
    return 1


def with_finishing():
    with swallowing():
        x = 1
        y = x + 1
    return y


async def anumbers(n):
    for i in range(n):
        yield i


async def async_loop():
    total = 0
    async for v in anumbers(2):
        total += v
        total *= 2
    return total


def drive(coroutine):
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value


def try_finally(flag):
    try:
        if flag:
            return "early"
        x = 2
    finally:
        y = 3
    return x + y


def loops(n):
    total = 0
    for i in range(n):
        if i == 1:
            continue
        if i == 3:
            break
        if i % 2:
            total += i
    else:
        total = -1
    while n > 0:
        n -= 1
        if n == 2:
            total += 10
    return total


def handlers(kind):
    try:
        try:
            if kind == 1:
                raise KeyError(kind)
            if kind == 2:
                raise ValueError(kind)
            result = "none"
        except KeyError:
            result = "key"
        finally:
            cleanup = True
    except ValueError:
        result = "value"
    return result, cleanup


def generators():
    squares = [i * i for i in range(3)]
    empty = [i for i in ()]
    return sum(squares) + len(empty) + sum(x for x in range(2))


def run_all():
    with_raising()
    with_finishing()
    drive(async_loop())
    try_finally(True)
    try_finally(False)
    loops(5)
    loops(2)
    handlers(0)
    handlers(1)
    handlers(2)
    generators()
