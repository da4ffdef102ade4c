"""User tools: host functions callable from sandbox code with JSON arguments."""

from __future__ import annotations

import dspy
import pydantic
import pytest

from dspy_rlm import RLM
from dspy_rlm.core.tools import normalize_tools, tool_docs
from tests.helpers import steps


def lookup(key: str, default: str = "none") -> str:
    """Look a key up in the host's table."""
    return {"a": "alpha"}.get(key, default)


class Hit(pydantic.BaseModel):
    line: int
    text: str


def search(pattern: str, limit: int = 3, *, flags: list[str] | None = None) -> list[Hit]:
    """Find lines matching a pattern."""
    return []


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
    assert "lookup(key: str, default: str = 'none') -> str" in lm.requests[0].text


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


def test_tool_docs_show_the_python_signature_with_defaults_and_return_type():
    docs = tool_docs(normalize_tools([search]))
    assert "`search(pattern: str, limit: int = 3, *, flags: list[str] | None = None) -> list[Hit]`" in docs
    assert "Find lines matching a pattern." in docs


def test_tool_docs_without_a_python_signature_fall_back_to_the_json_schema():
    tool = dspy.Tool(lambda **kwargs: 1, name="remote", desc="A remote call.",
                     args={"q": {"type": "string"}, "n": {"type": "integer", "default": 5}})
    assert "`remote(q: string, n: integer = 5)`: A remote call." in tool_docs(normalize_tools([tool]))


def test_tool_docs_read_a_callable_objects_call_signature():
    class Counter:
        """Count words."""

        def __call__(self, text: str, minimum: int = 1) -> dict[str, int]:
            return {}

    docs = tool_docs(normalize_tools([dspy.Tool(Counter(), name="count")]))
    assert "`count(text: str, minimum: int = 1) -> dict[str, int]`" in docs
