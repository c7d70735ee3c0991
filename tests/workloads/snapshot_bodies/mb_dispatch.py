"""A function reachable only through a `functools.singledispatch` registry: the first `_` is
rebound by the second, and only the registry (a dict in the wrapper's closure) holds it."""
import functools


@functools.singledispatch
def show(x):
    return "any"


@show.register
def _(x: int):
    return str(x) + " from the registry only"


@show.register
def _(x: str):
    return "str"


show(1)
