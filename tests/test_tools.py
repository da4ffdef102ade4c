"""User tools: host functions callable from sandbox code with JSON arguments."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM
from tests.helpers import steps


def lookup(key: str, default: str = "none") -> str:
    """Look a key up in the host's table."""
    return {"a": "alpha"}.get(key, default)


def explode(n: int) -> int:
    """Always fails."""
    raise KeyError(f"no row {n}")


async def async_double(n: int) -> int:
    """Doubles a number, asynchronously."""
    return 2 * n


def test_tools_take_positional_and_keyword_json_arguments():
    lm = steps("SUBMIT(answer=lookup('a') + lookup(key='b', default='-') + str(async_double(21)))")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", tools=[lookup, async_double])(context="x")
    assert result.answer == "alpha-42"
    assert "lookup(key: string, default: string)" in lm.requests[0].text


def test_tool_errors_come_back_as_observations():
    lm = steps("explode(3)", "SUBMIT(answer='recovered')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", tools=[explode])(context="x")
    assert "explode" in result.trajectory[0]["output"] and "no row 3" in result.trajectory[0]["output"]
    assert result.answer == "recovered"


async def test_async_tools_work_under_acall():
    lm = steps("SUBMIT(answer=str(async_double(5)))")
    with dspy.context(lm=lm):
        result = await RLM("context -> answer", tools=[async_double]).acall(context="x")
    assert result.answer == "10"


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ({"lookup": lookup}, "tools must be a list"),
        ([lookup, lookup], "Duplicate tool name"),
        ([dspy.Tool(lookup, name="llm_query")], "clashes with a sandbox built-in"),
        ([dspy.Tool(lookup, name="not valid")], "Invalid tool name"),
        ([42], "not callable"),
    ],
)
def test_invalid_tools_are_refused_at_construction(tools, message):
    with pytest.raises((TypeError, ValueError), match=message):
        RLM("context -> answer", tools=tools)
