"""What an input may hold: the documented conversions to the guest's JSON, and clear errors for the rest.

These run on the host only (`encode_input` is what both sandboxes mount), no guest needed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json

import pytest

from dspy_rlm.errors import InputsNotLoaded
from dspy_rlm.sandbox.jsonsafe import encode_input


def mounted(value):
    """The value the guest gets for an input (the JSON it is mounted as)."""
    kind, data = encode_input("x", value)
    assert kind == "json"
    return json.loads(data)


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Row:
    id: int
    price: object


@pytest.mark.parametrize(
    ("value", "guest"),
    [
        ({"when": dt.datetime(2024, 5, 1, 10, 30)}, {"when": "2024-05-01T10:30:00"}),
        ([dt.date(2024, 5, 1), dt.time(9, 15)], ["2024-05-01", "09:15:00"]),
        ({"tags": {"b", "c", "a"}}, {"tags": ["a", "b", "c"]}),
        ({"pair": (1, 2)}, {"pair": [1, 2]}),
        ({3: "three", 4: "four"}, {"3": "three", "4": "four"}),
        ({"colour": Colour.RED}, {"colour": "red"}),
        ([Row(1, 2.5)], [{"id": 1, "price": 2.5}]),
        ({"n": 10**4000}, {"n": 10**4000}),
    ],
    ids=["nested datetime", "date and time", "set", "tuple", "int keys", "enum", "dataclass", "long int"],
)
def test_documented_conversions_reach_the_guest(value, guest):
    assert mounted(value) == guest


def test_an_int_too_long_for_the_guest_is_refused_with_the_fix():
    with pytest.raises(InputsNotLoaded, match=r"input 'x' holds an int of more than 4,300 digits.*\(at x\['n'\]\[1\]\).*str"):
        encode_input("x", {"n": [1, 10**5000]})
    with pytest.raises(InputsNotLoaded, match="more than 4,300 digits"):
        encode_input("x", -(10**5000))


def test_keys_that_would_become_the_same_json_key_are_refused():
    with pytest.raises(InputsNotLoaded, match=r"keys 1 and '1'.*JSON key '1'.*rename"):
        encode_input("x", {"inner": {1: "int", "1": "str"}})


def test_an_object_json_has_no_form_for_is_refused_where_it_is():
    with pytest.raises(TypeError, match=r"decimal.Decimal.*\(at x\[0\]\.price\)"):
        encode_input("x", [Row(1, decimal.Decimal("2.5"))])
    with pytest.raises(TypeError, match=r"builtins.object.*\(at x\['k'\]\)"):
        encode_input("x", {"k": object()})


def test_a_container_that_holds_itself_is_refused():
    loop = [1]
    loop.append(loop)
    with pytest.raises(InputsNotLoaded, match="holds itself"):
        encode_input("x", {"loop": loop})


def test_data_nested_deeper_than_json_can_encode_gets_a_clear_error():
    deep = inner = []
    for _ in range(5_000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(InputsNotLoaded, match="nested too deeply"):
        encode_input("x", deep)


def test_large_inputs_are_checked_quickly():
    """The check walks every value; a million plain values stays well under a second or two."""
    import time

    rows = [{"id": i, "name": "n", "score": 0.5, "ok": True, "tags": ["a", "b"]} for i in range(200_000)]
    started = time.perf_counter()
    encode_input("x", rows)
    assert time.perf_counter() - started < 10  # generous: a shared machine; the encoder's own walk is most of it
