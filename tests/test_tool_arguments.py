"""Tool arguments bind as Python binds them: the same TypeErrors, never a silent pick."""

from __future__ import annotations

from typing import Any

import dspy
import pytest

from dspy_rlm import RLM
from dspy_rlm.core.tools import tool_function
from tests.helpers import steps


def pair(a: int, b: int = 0) -> list:
    """Returns its arguments."""
    return [a, b]


def host(tool: Any):
    return tool_function(tool if isinstance(tool, dspy.Tool) else dspy.Tool(tool), run_coroutine=lambda c: None)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1,), {"a": 2}, "multiple values for argument 'a'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((), {"b": 1}, "missing a required argument: 'a'"),
        ((1,), {"c": 3}, "got an unexpected keyword argument 'c'"),
    ],
)
def test_a_tool_called_wrongly_raises_pythons_type_error(args, kwargs, message):
    with pytest.raises(TypeError, match=rf"^pair\(\): {message}"):
        host(pair)(*args, **kwargs)


def test_positional_keyword_and_default_arguments_bind_by_name():
    call = host(pair)
    assert call(1, 2) == [1, 2] and call(1) == [1, 0] and call(b=5, a=4) == [4, 5] and call(7, b=8) == [7, 8]


def test_extra_keyword_arguments_reach_a_tool_that_takes_kwargs():
    def tagged(name: str, **tags: Any) -> dict:
        """Returns its tags."""
        return {"name": name, **tags}

    assert host(tagged)("n", color="red") == {"name": "n", "color": "red"}


def test_a_tool_with_declared_args_binds_against_them():
    tool = dspy.Tool(lambda **kw: sorted(kw.items()), name="declared",
                     args={"x": {"type": "integer"}, "y": {"type": "integer"}})
    assert host(tool)(1, y=2) == [("x", 1), ("y", 2)]
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        host(tool)(1, x=2)


def test_in_the_sandbox_the_model_sees_the_type_error():
    lm = steps("pair(1, a=2)", "SUBMIT(answer='ok')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", tools=[pair])(context="x")
    assert "TypeError: pair(): multiple values for argument 'a'" in result.trajectory[0]["output"]
