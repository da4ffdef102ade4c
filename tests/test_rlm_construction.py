"""Construction and call errors name the problem and the fix."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM


def lookup(key: str) -> str:
    return key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"signature": "context -> "}, "Invalid signature|needs at least one input and one output"),
        ({"signature": "->->"}, "Invalid signature"),
        ({"signature": "llm_query -> answer"}, "Input names \\['llm_query'\\] clash"),
        ({"signature": "context -> SUBMIT"}, "Output names \\['SUBMIT'\\] clash"),
        ({"signature": "context -> trajectory"}, "Output names \\['trajectory'\\] clash"),
        ({"signature": "lookup -> answer", "tools": [lookup]}, "also tool names"),
        ({"signature": "context -> answer", "max_iters": 0}, "max_iters must be a positive integer"),
    ],
)
def test_bad_construction_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RLM(**kwargs)


def test_calls_check_inputs_before_opening_a_sandbox():
    rlm = RLM("context, query -> answer")
    with dspy.context(lm=dspy.LM("openai/never-called")):
        with pytest.raises(ValueError, match="Missing required inputs \\['query'\\]"):
            rlm(context="x")
        with pytest.raises(ValueError, match="Unexpected inputs \\['extra'\\]"):
            rlm(context="x", query="q", extra=1)


def test_a_missing_lm_is_reported_with_the_fix():
    with dspy.context(lm=None):
        with pytest.raises(dspy.utils.exceptions.LMNotConfiguredError, match="dspy.configure"):
            RLM("context -> answer")(context="x")


def test_interpreter_factory_is_refused_with_a_pointer_to_sandbox_factory():
    with pytest.raises(TypeError, match="sandbox_factory"):
        RLM("context -> answer", interpreter_factory=object)
