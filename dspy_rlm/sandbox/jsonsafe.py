"""Host-side conversion of Python values into JSON-able ones.

Inputs and host function results reach the guest as JSON text (read there with
`json.loads`), so they must be made of dict/list/str/int/float/bool/None first.
`to_json_safe` does that without failing: what JSON has no form for becomes
the closest JSON value, or its repr. The guest has its own copy of these rules
for `_rlm_submit` (see guest_module.py).

`dumps_any` / `loads_any` are `json.dumps` / `json.loads` (same text, same values)
for JSON of any depth: the C codec stops at about 10,000 levels, and a worker's
messages must carry whatever the in-process sandbox would have handled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from dspy_rlm.errors import InputsNotLoaded
from dspy_rlm.sandbox.input_values import check_input

__all__ = ["dumps_any", "encode_input", "loads_any", "to_json_safe"]


def to_json_safe(value: Any) -> Any:
    """Return a copy of `value` made of dict/list/str/int/float/bool/None.

    Tuples, sets and deques become lists; dict keys become str; bytes are decoded
    as UTF-8 with replacement; dates use isoformat; pydantic models are dumped in
    JSON mode; dataclasses become dicts; enums give their value; anything else its
    repr. NaN, infinities and big ints are kept: Python's json carries them."""
    return _convert(value, set())


def _convert(x: Any, active: set[int]) -> Any:
    t = type(x)
    if x is None or t is str or t is bool:
        return x
    if t is int or t is float:
        return x
    if isinstance(x, enum.Enum):  # before str/int: StrEnum and IntEnum are both
        return _convert(x.value, active)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x).decode("utf-8", errors="replace")
    if isinstance(x, (Mapping, list, tuple, set, frozenset, deque)):
        key = id(x)
        if key in active:  # a container holding itself: cut the cycle like repr does
            return "..."
        active.add(key)
        try:
            if isinstance(x, Mapping):
                return {
                    (k if type(k) is str else str(_convert(k, active))): _convert(v, active)
                    for k, v in x.items()
                }
            items = _sorted_if_possible(x) if isinstance(x, (set, frozenset)) else x
            return [_convert(v, active) for v in items]
        finally:
            active.discard(key)
    return _convert_object(x, active)


def _convert_object(x: Any, active: set[int]) -> Any:
    if isinstance(x, BaseModel):
        return _convert(x.model_dump(mode="json"), active)
    if isinstance(x, (dt.date, dt.time)):  # datetime is a date
        return x.isoformat()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _convert(dataclasses.asdict(x), active)
    return repr(x)


def _sorted_if_possible(items: set | frozenset) -> list:
    try:
        return sorted(items)
    except TypeError:  # mixed types: keep iteration order rather than fail
        return list(items)


# The values an input may be as given (converted on the way in); other types are refused.
INPUT_TYPES = (str, Mapping, list, tuple, set, frozenset, int, float, bool, type(None), BaseModel)


def encode_input(name: str, value: Any) -> tuple[str, bytes]:
    """Encode one input for the read-only inputs folder: ("text", utf-8) for str,
    ("json", utf-8 JSON) for JSON-like values and pydantic models."""
    if isinstance(value, str):
        # surrogatepass keeps lone surrogates (e.g. from surrogateescape decoding)
        # intact; the guest decodes with the same handler.
        return "text", value.encode("utf-8", errors="surrogatepass")
    if not isinstance(value, INPUT_TYPES):
        raise TypeError(
            f"input {name!r} has type {type(value).__name__}, which the sandbox cannot carry; "
            "pass a str, a JSON-like value (dict, list, int, float, bool, None) or a pydantic model"
        )
    check_input(name, value, key_text=lambda key: str(to_json_safe(key)))  # clear errors, with where
    try:
        data = json.dumps(to_json_safe(value), ensure_ascii=False)
    except RecursionError:
        raise InputsNotLoaded(f"input {name!r} is nested too deeply to convert to JSON; flatten it, or pass it "
                              "as a JSON str and json.loads it in code") from None
    return "json", data.encode("utf-8", errors="surrogatepass")


def dumps_any(value: Any) -> str:
    """`json.dumps(value)` for a JSON tree of any depth (made of dict/list/str/int/float/bool/None)."""
    try:
        return json.dumps(value)
    except RecursionError:
        return _dumps_iterative(value)


def loads_any(text: str) -> Any:
    """`json.loads(text)` for JSON text of any depth."""
    try:
        return json.loads(text)
    except RecursionError:
        return _loads_iterative(text)


class _Text(str):
    """Already-encoded text on `_dumps_iterative`'s stack (a plain str there is a value)."""


def _dumps_iterative(value: Any) -> str:
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Text:
            parts.append(item)
        elif isinstance(item, dict) and item:
            todo: list[Any] = []
            for i, (key, child) in enumerate(item.items()):
                key_text = json.dumps(key) if isinstance(key, str) else json.dumps({key: 0})[1:-4]
                todo += [_Text(("{" if i == 0 else ", ") + key_text + ": "), child]
            stack += reversed([*todo, _Text("}")])
        elif isinstance(item, (list, tuple)) and item:
            todo = []
            for i, child in enumerate(item):
                todo += [_Text("[" if i == 0 else ", "), child]
            stack += reversed([*todo, _Text("]")])
        else:  # a scalar, or an empty container
            parts.append(json.dumps(item))
    return "".join(parts)


_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_CONSTANTS = {"null": None, "true": True, "false": False, "NaN": float("nan"), "Infinity": float("inf"),
              "-Infinity": float("-inf")}


def _loads_iterative(text: str) -> Any:
    """A JSON parser with an explicit stack instead of recursion (json.loads's grammar)."""
    stack: list[list | dict] = []  # the open containers, innermost last
    keys: list[str | None] = []  # the key each open dict is waiting to fill
    at = _SPACE.match(text, 0).end()
    while True:
        value, at, opened = _scalar_or_open(text, at)
        if opened is not None:
            stack.append(opened)
            keys.append(None)
            at = _SPACE.match(text, at).end()
            if text.startswith("]" if isinstance(opened, list) else "}", at):
                value, at = stack.pop(), at + 1
                keys.pop()
            elif isinstance(opened, dict):
                keys[-1], at = _key(text, at)
                continue
            else:
                continue
        # `value` is complete: put it in its container, closing those it completes.
        while True:
            if not stack:
                at = _SPACE.match(text, at).end()
                if at != len(text):
                    raise json.JSONDecodeError("Extra data", text, at)
                return value
            top = stack[-1]
            if isinstance(top, list):
                top.append(value)
            else:
                top[keys[-1]] = value
            at = _SPACE.match(text, at).end()
            closer = "]" if isinstance(top, list) else "}"
            if text.startswith(",", at):
                at = _SPACE.match(text, at + 1).end()
                if isinstance(top, dict):
                    keys[-1], at = _key(text, at)
                break
            if not text.startswith(closer, at):
                raise json.JSONDecodeError(f"Expecting ',' delimiter or {closer!r}", text, at)
            value, at = stack.pop(), at + 1
            keys.pop()


def _scalar_or_open(text: str, at: int) -> tuple[Any, int, list | dict | None]:
    """The value starting at `at`: (scalar, end, None), or (None, after the bracket, new container)."""
    char = text[at:at + 1]
    if char == "[" or char == "{":
        return None, at + 1, [] if char == "[" else {}
    if char == '"':
        value, end = json.decoder.scanstring(text, at + 1)
        return value, end, None
    number = _NUMBER.match(text, at)
    if number and not text.startswith("-Infinity", at):
        whole, fraction, exponent = number.groups()
        if fraction or exponent:
            return float(whole + (fraction or "") + (exponent or "")), number.end(), None
        return int(whole), number.end(), None
    for word, constant in _CONSTANTS.items():
        if text.startswith(word, at):
            return constant, at + len(word), None
    raise json.JSONDecodeError("Expecting value", text, at)


def _key(text: str, at: int) -> tuple[str, int]:
    """A dict key and its colon, starting at `at`; the index of the value after them."""
    if not text.startswith('"', at):
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
    key, at = json.decoder.scanstring(text, at + 1)
    at = _SPACE.match(text, at).end()
    if not text.startswith(":", at):
        raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
    return key, _SPACE.match(text, at + 1).end()
