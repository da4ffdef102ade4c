"""Host-side JSON-safe conversion of inputs and host function results."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections import OrderedDict, deque

import pytest
from pydantic import BaseModel

from dspy_rlm.sandbox.jsonsafe import encode_input, to_json_safe


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int
    y: tuple


class Item(BaseModel):
    name: str
    when: dt.datetime


def test_to_json_safe_rules():
    loop: list = [1]
    loop.append(loop)
    value = {
        (1, 2): {3, 1},
        "t": (1, "a"),
        "b": bytearray(b"h\xffi"),
        "d": dt.datetime(2024, 1, 2, 3, 4),
        "e": [Color.RED, Level.HIGH],
        "p": Point(1, (2,)),
        "m": Item(name="n", when=dt.datetime(2024, 1, 1)),
        "q": deque([1]),
        "o": OrderedDict(z=1, a=2),
        "loop": loop,
        "x": object,
        "nan": float("nan"),
        "big": 2**100,
    }
    out = to_json_safe(value)
    assert out["[1, 2]"] == [1, 3]
    assert out["t"] == [1, "a"] and out["b"] == "h\ufffdi" and out["d"] == "2024-01-02T03:04:00"
    assert out["e"] == ["red", 3] and out["p"] == {"x": 1, "y": [2]}
    assert out["m"] == {"name": "n", "when": "2024-01-01T00:00:00"}
    assert out["q"] == [1] and list(out["o"]) == ["z", "a"] and out["loop"] == [1, "..."]
    assert out["x"] == "<class 'object'>" and out["big"] == 2**100 and out["nan"] != out["nan"]
    json.dumps(out)


def test_encode_input():
    assert encode_input("c", "é\ud800") == ("text", "é\ud800".encode("utf-8", "surrogatepass"))
    kind, data = encode_input("d", {"a": (1, 2)})
    assert kind == "json" and json.loads(data) == {"a": [1, 2]}
    assert json.loads(encode_input("m", Item(name="n", when=dt.datetime(2024, 1, 1)))[1])["name"] == "n"
    with pytest.raises(TypeError, match="input 'f' has type function"):
        encode_input("f", lambda: 1)


# ---------------------------------------------------------------- JSON text of any depth

def _nested(depth: int):
    value: list = []
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, None, True, "é\ud800"], "b": {}}, [], {}, "", 0, -1.5e300, float("nan"), float("inf"),
    10 ** 100, [{"x": [[]]}, "\n\"\\"], {"": {"": [False]}},
])
def test_any_depth_json_reads_and_writes_exactly_like_json(value):
    from dspy_rlm.sandbox import jsonsafe

    text = json.dumps(value)
    assert jsonsafe._dumps_iterative(value) == text
    assert json.dumps(jsonsafe._loads_iterative(text)) == text
    assert jsonsafe.dumps_any(value) == text and json.dumps(jsonsafe.loads_any(text)) == text


def test_any_depth_json_round_trips_values_deeper_than_json_can_walk():
    from dspy_rlm.sandbox.jsonsafe import dumps_any, loads_any

    deep = _nested(60_000)
    with pytest.raises(RecursionError):
        json.dumps(deep)
    text = dumps_any(deep)
    assert text.count("[") == 30_001 and text.count('{"k": ') == 30_000
    assert dumps_any(loads_any(text)) == text


@pytest.mark.parametrize("bad", ["", "[1,", "[1 2]", '{"a" 1}', "[1]]", "tru", '{"a": }', "[,1]", "01"])
def test_any_depth_json_refuses_what_json_refuses(bad):
    from dspy_rlm.sandbox import jsonsafe

    with pytest.raises(json.JSONDecodeError):
        json.loads(bad)
    with pytest.raises(json.JSONDecodeError):
        jsonsafe._loads_iterative(bad)
