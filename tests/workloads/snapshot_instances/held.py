"""Code held only through objects: no module namespace, class dict or closure holds these
functions, and the module's own code (whose co_consts held theirs) is freed after import.
Every line whose comment says how it is held runs; tests/it/snapshot_instances.rs asserts each
is proven.
"""
import functools


class Curry:
    """Like toolz's `curry`: the function is held in a `functools.partial` attribute."""

    def __init__(self, func):
        self._partial = functools.partial(func)

    def __call__(self, *args):
        return self._partial(*args)


class Slotted:
    __slots__ = ("hook",)

    def __init__(self, hook):
        self.hook = hook


class Plain:
    pass


@Curry
def curried(a, b):
    total = a + b  # via curry's partial
    return total


@functools.lru_cache(maxsize=None)
def cached(n):
    square = n * n  # via lru_cache wrapper
    return square


def _in_slot(x):
    doubled = x * 2  # via slots
    return doubled


def _in_list(x):
    tripled = x * 3  # via list
    return tripled


def _in_tuple(x):
    lowered = x - 1  # via tuple
    return lowered


def _in_dict_attr(x):
    halved = x / 2  # via materialized instance dict
    return halved


def _default_impl(x):
    shifted = x << 1  # via default
    return shifted


def _wrapped_only(x):
    raised = x + 5  # via __wrapped__
    return raised


def uses_default(x, _impl=_default_impl):
    return _impl(x)


def forwarder(x):
    return forwarder.__wrapped__(x)


forwarder.__wrapped__ = _wrapped_only

SLOT = Slotted(_in_slot)
HOOKS = [_in_list]
PAIR = (_in_tuple, 0)
PLAIN = Plain()
PLAIN.first = 1
PLAIN.second = _in_dict_attr
PLAIN.__dict__  # materialize the dict (3.13+ keeps values inline until then)

curried(1, 2)
cached(3)
SLOT.hook(1)
HOOKS[0](1)
PAIR[0](1)
PLAIN.second(4)
uses_default(1)
forwarder(1)

del _in_slot, _in_list, _in_tuple, _in_dict_attr, _default_impl, _wrapped_only
