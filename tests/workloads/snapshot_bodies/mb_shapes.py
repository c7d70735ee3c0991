"""Conditional imports, module-level if/else, try/except, classes, decorators; no function
body here ever runs."""
import sys
import functools

try:
    import json
    HAVE_JSON = True
except ImportError:
    json = None
    HAVE_JSON = False

try:
    import no_such_module_here  # noqa: F401
    FAST = True
except ImportError:
    FAST = False

    def slow_path():
        return 1

if sys.version_info >= (3, 12):
    def version_name():
        return "new"
else:
    def version_name():
        return "old"


def tag(value):
    def apply(function):
        function.tag = value
        return function
    return apply


@tag(
    "multi-line decorator"
)
@functools.lru_cache(maxsize=None)
def cached(x):
    return x


try:
    int("not a number")
    AFTER_RAISE = "never"
except ValueError:
    caught = True


class Shape:
    """A class with class-level statements and nested defs."""
    sides = 0
    names = [n for n in ("a", "b")]

    def area(self):
        return 0

    @staticmethod
    def unit():
        return Shape()

    class Meta:
        ordering = ["sides"]

        def describe(self):
            return "meta"

    if HAVE_JSON:
        def dump(self):
            return json.dumps(self.sides)

    trailing = sides + 1


class Empty:
    pass


TABLE = dict(
    a=[lambda x:
       x],
    b=1,
)
PICK = (1
        if HAVE_JSON else
        2)
value = 1
value = value + 1
del value


def last():
    return None


tail_statement = 2

if __name__ == "__main__":
    print("not run")
