"""What an input may hold, checked before it is encoded for the guest.

Inputs reach the guest as JSON (`jsonsafe.encode_input`). These conversions are
part of the contract (the README lists them): tuples and sets become lists (sets
sorted when they can be), dates and times ISO 8601 strings, enums their values,
dataclasses and pydantic models dicts, bytes UTF-8 text, and dict keys strings
(`3` becomes `"3"`). What has no such form is refused here, naming where it is:
an object JSON cannot hold (a `Decimal`, a socket), two keys that would become
the same string, an int too long for the guest's `int`/`str` conversion, and a
container that holds itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel

from dspy_rlm.errors import InputsNotLoaded

# The guest's CPython keeps the default limit on int <-> str digits, so its json.loads refuses longer ints.
MAX_INT_DIGITS = sys.int_info.default_max_str_digits
_LEAVES = (str, float, bool, type(None), bytes, bytearray, memoryview, enum.Enum, dt.date, dt.time, BaseModel)
_SEQUENCES = (list, tuple, set, frozenset, deque)
_STR = {str}


def check_input(name: str, value: Any, key_text: Callable[[Any], str]) -> None:
    """Raise a clear error if `value` holds something the inputs' JSON cannot carry as documented.

    `key_text` is the encoder's rule for a dict key that is not a str (the JSON key it becomes).
    The walk keeps its own stack, so data of any depth is checked without recursion."""
    open_ids: set[int] = set()  # the containers being walked (their ancestors' ids), for cycles
    # (value, path): a path is (parent path, key), None at the top.
    stack: list[tuple[Any, Any]] = [(value, None)]
    push, pop = stack.append, stack.pop
    while stack:
        x, path = pop()
        if x is _CLOSE:
            open_ids.discard(path)
            continue
        try:
            children = _children(x, open_ids, key_text)
        except _Refused as refused:
            raise refused.error_type(f"input {name!r} {refused.message}"
                                     + (f" (at {name}{_render(path)})" if path else "") + f"; {refused.fix}") from None
        if children is None:
            continue
        open_ids.add(id(x))
        push((_CLOSE, id(x)))
        for key, item in children:
            kind = type(item)
            if kind is str or kind is float or kind is bool or item is None or (kind is int and item.bit_length() < 64):
                continue  # the common leaves, without a round on the stack
            push((item, (path, key)))


_CLOSE = object()  # on the stack after a container's children: it is no longer open


class _Field(str):
    """A dataclass field's name on a path (shown `.name`, not `['name']`)."""


class _Refused(Exception):
    def __init__(self, message: str, fix: str, error_type: type[Exception] = InputsNotLoaded):
        self.message, self.fix, self.error_type = message, fix, error_type


def _children(x: Any, open_ids: set[int], key_text: Callable[[Any], str]) -> Iterable[tuple[Any, Any]] | None:
    """`x`'s (key, item) pairs to check, None for a leaf; raises `_Refused` for what cannot go."""
    kind = type(x)
    if kind is dict or kind is list:  # most containers: no ABC checks
        if id(x) in open_ids:
            raise _Refused("holds itself", "pass a copy without the cycle")
        if kind is list:
            return enumerate(x)
        _check_keys(x, key_text)
        return x.items()
    if kind is int or (isinstance(x, int) and not isinstance(x, (bool, enum.Enum))):
        _check_int(x)
        return None
    if isinstance(x, _LEAVES):
        return None
    if isinstance(x, (Mapping, *_SEQUENCES)) and id(x) in open_ids:
        raise _Refused("holds itself", "pass a copy without the cycle")
    if isinstance(x, Mapping):
        _check_keys(x, key_text)
        return x.items()
    if isinstance(x, (list, tuple, deque)):
        return enumerate(x)
    if isinstance(x, (set, frozenset)):
        return ((None, item) for item in x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return [(_Field(f.name), getattr(x, f.name)) for f in dataclasses.fields(x)]
    raise _Refused(f"holds a {type(x).__module__}.{type(x).__qualname__}, which JSON has no form for",
                   "convert it first (str(...) or float(...)), or pass a pydantic model that serializes it",
                   TypeError)


def _check_int(x: int) -> None:
    if x.bit_length() > 3 * MAX_INT_DIGITS and abs(x) >= _ten_to_the_limit():
        raise _Refused(f"holds an int of more than {MAX_INT_DIGITS:,} digits, longer than the sandbox's int/str "
                       "conversion allows", "pass it as a str of its digits (code may call "
                       "sys.set_int_max_str_digits(0) before int(...)), or as a float if precision does not matter")


@cache
def _ten_to_the_limit() -> int:
    return 10**MAX_INT_DIGITS


def _check_keys(x: Mapping, key_text: Callable[[Any], str]) -> None:
    if set(map(type, x)) <= _STR:  # only keys of other types can collide once converted
        return
    seen: dict[str, Any] = {}
    for key in x:
        text = key if type(key) is str else key_text(key)
        if text in seen:
            raise _Refused(f"has the keys {seen[text]!r} and {key!r}, which both become the JSON key {text!r}",
                           "rename one of them")
        seen[text] = key


def _render(path: Any) -> str:
    segments = []
    while path is not None:
        path, key = path
        segments.append("" if key is None else f".{key}" if isinstance(key, _Field) else f"[{key!r}]")
    return "".join(reversed(segments))
