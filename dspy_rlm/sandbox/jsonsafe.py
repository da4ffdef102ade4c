"""Host-side conversion of Python values into JSON-able ones.

Inputs and host function results reach the guest as JSON text (read there with
`json.loads`), so they must be made of dict/list/str/int/float/bool/None first.
`to_json_safe` does that without failing: what JSON has no form for becomes
the closest JSON value, or its repr. The guest has its own copy of these rules
for `_rlm_submit` (see guest_module.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["encode_input", "to_json_safe"]

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


_INPUT_TYPES = (str, Mapping, list, tuple, set, frozenset, int, float, bool, type(None), BaseModel)


def encode_input(name: str, value: Any) -> tuple[str, bytes]:
    """Encode one input for the read-only inputs folder: ("text", utf-8) for str,
    ("json", utf-8 JSON) for JSON-like values and pydantic models."""
    if isinstance(value, str):
        # surrogatepass keeps lone surrogates (e.g. from surrogateescape decoding)
        # intact; the guest decodes with the same handler.
        return "text", value.encode("utf-8", errors="surrogatepass")
    if not isinstance(value, _INPUT_TYPES):
        raise TypeError(
            f"input {name!r} has type {type(value).__name__}, which the sandbox cannot carry; "
            "pass a str, a JSON-like value (dict, list, int, float, bool, None) or a pydantic model"
        )
    data = json.dumps(to_json_safe(value), ensure_ascii=False)
    return "json", data.encode("utf-8", errors="surrogatepass")
