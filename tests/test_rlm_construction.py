"""Construction and call errors name the problem and the fix."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM
from dspy_rlm.sandbox import Sandbox
from tests.helpers import steps


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


def test_a_call_time_interpreter_factory_is_refused_with_a_pointer_to_sandbox_factory():
    """dspy.RLM takes `interpreter_factory=` per call; here that is a TypeError naming the way that works."""
    rlm = RLM("context -> answer")
    with dspy.context(lm=steps("SUBMIT(answer='never')")):
        with pytest.raises(TypeError, match="sandbox_factory"):
            rlm(context="x", interpreter_factory=object)


def test_a_call_time_interpreter_factory_of_none_means_no_override_as_in_dspy_rlm():
    with dspy.context(lm=steps("SUBMIT(answer='ran')")):
        assert RLM("context -> answer")(context="x", interpreter_factory=None).answer == "ran"


def test_a_call_time_sandbox_factory_runs_that_call_only():
    made = []

    def recording(inputs, functions, **options):
        made.append(sorted(inputs))
        return Sandbox(inputs, functions, **options)

    rlm = RLM("context -> answer")
    with dspy.context(lm=steps("SUBMIT(answer=context)", "SUBMIT(answer=context)")):
        assert rlm(context="first", sandbox_factory=recording).answer == "first"
        assert rlm(context="second").answer == "second"
    assert made == [["context"]]


async def test_a_call_time_sandbox_factory_works_under_acall():
    made = []

    def recording(inputs, functions, **options):
        made.append(1)
        return Sandbox(inputs, functions, **options)

    with dspy.context(lm=steps("SUBMIT(answer=context)")):
        result = await RLM("context -> answer").acall(context="a", sandbox_factory=recording)
    assert result.answer == "a" and made == [1]


def test_a_call_time_sandbox_factory_is_checked_before_the_call():
    with dspy.context(lm=steps("SUBMIT(answer='never')")):
        with pytest.raises(TypeError, match="sandbox_factory must be a callable"):
            RLM("context -> answer")(context="x", sandbox_factory="eryx")


@pytest.mark.parametrize("name", ["sandbox_factory", "interpreter_factory"])
def test_input_names_that_are_call_options_are_refused(name):
    with pytest.raises(ValueError, match=f"\\['{name}'\\].*call option"):
        RLM(f"{name} -> answer")
