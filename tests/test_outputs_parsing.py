"""Parsing a typed submission is bounded: the host never spends more than a moment on it.

DSPy's `parse_value` repairs malformed JSON with `json_repair`, which is quadratic
on some text (about 0.5 s at 5,000 characters, minutes at 100,000). The host repairs
only short text; longer text must be valid JSON or a Python literal (read in linear
time), or the model is told to submit the value itself.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import dspy
import pytest

from dspy_rlm import RLM
from dspy_rlm.core.outputs import parse_submission
from dspy_rlm.errors import OutputError
from dspy_rlm.settings import SUBMIT_REPAIR_CHARS
from tests.helpers import steps

# Text json_repair is quadratic on: an open list of strings with stray quotes.
QUADRATIC = '["' + 'a"b' * 33_333  # 100,001 characters


def fields(annotation: Any) -> dict[str, Any]:
    """The output fields of `-> x: annotation`."""
    return dict(dspy.Signature({"x": (annotation, dspy.OutputField())}).output_fields)


def test_long_malformed_json_is_refused_at_once_with_a_message_the_model_can_act_on():
    started = time.perf_counter()
    with pytest.raises(OutputError) as refused:
        parse_submission({"x": QUADRATIC}, fields(list[int]))
    assert time.perf_counter() - started < 5  # json_repair takes minutes on this text
    message = str(refused.value)
    assert "100,001 characters of text that is not valid JSON" in message
    assert "list[int]" in message and "not its text" in message


@pytest.mark.parametrize("annotation, text, expected", [
    (list[int], "[" + ", ".join(map(str, range(30_000))) + "]", list(range(30_000))),  # valid JSON
    (list[str], repr([f"item {i}" for i in range(5_000)]), [f"item {i}" for i in range(5_000)]),  # a Python literal
    (str, QUADRATIC, QUADRATIC),  # a text output takes any text
    (str | None, QUADRATIC, QUADRATIC),
    (str | int, QUADRATIC, QUADRATIC),  # a type that accepts the text itself
])
def test_long_text_that_can_be_read_in_linear_time_is_still_accepted(annotation, text, expected):
    assert len(text) > SUBMIT_REPAIR_CHARS
    assert parse_submission({"x": text}, fields(annotation)) == {"x": expected}


@pytest.mark.parametrize("annotation, text, expected", [
    (list[int], "[1, 2, 3", [1, 2, 3]),
    (dict[str, int], "{'a': 1, b: 2}", {"a": 1, "b": 2}),
    (Literal["yes", "no"], " 'yes' ", "yes"),
])
def test_short_malformed_text_is_still_repaired(annotation, text, expected):
    assert parse_submission({"x": text}, fields(annotation)) == {"x": expected}


def test_a_long_submission_does_not_hold_the_run_past_its_deadline():
    """The model submits the text of a value, is told why it was refused, and submits the value."""
    lm = steps(f"SUBMIT(answer={QUADRATIC!r})", "SUBMIT(answer=[1, 2])")
    started = time.perf_counter()
    with dspy.context(lm=lm):
        result = RLM("context -> answer: list[int]", max_iters=3, max_time=30)(context="abc")
    assert time.perf_counter() - started < 30
    assert result.answer == [1, 2]
    assert "not valid JSON" in result.trajectory[0]["output"] and result.trajectory[0]["error"] == "output"
