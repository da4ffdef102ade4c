"""User tools and the names a run reserves in the sandbox.

Tools are host functions the model's code calls with JSON arguments. They go
through `dspy.Tool`, so DSPy callbacks (and MLflow's Tool spans) see them.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable

from dspy.adapters.types.tool import Tool

from dspy_rlm.core.outputs import TERMINATION_NAMES
from dspy_rlm.sandbox import is_identifier

SUB_QUERY_NAMES = ("llm_query", "llm_query_batched", "llm_batch")
# Names the sandbox itself defines, or that guest code relies on being the stdlib's.
RESERVED_NAMES = frozenset(
    {*SUB_QUERY_NAMES, *TERMINATION_NAMES, "print", "invoke", "list_callbacks", "asyncio", "json", "re", "os", "sys"}
)
RESERVED_RESULT_NAMES = frozenset({"trajectory", "final_reasoning", "usage"})


def is_reserved(name: str) -> bool:
    return name in RESERVED_NAMES or name.startswith("_rlm") or name.startswith("__")


def normalize_tools(tools: list[Callable | Tool] | None) -> dict[str, Tool]:
    """Turn `tools=[fn, dspy.Tool(...)]` into `{name: Tool}`, checking every name."""
    if not tools:
        return {}
    if isinstance(tools, dict):
        raise TypeError("tools must be a list, not a dict: change tools={'name': fn} to tools=[fn] "
                        "(or dspy.Tool(fn, name='name') to rename)")
    normalized: dict[str, Tool] = {}
    for value in tools:
        if not isinstance(value, Tool) and not callable(value):
            raise TypeError(f"Tool {value!r} is not callable; pass functions or dspy.Tool objects")
        tool = value if isinstance(value, Tool) else Tool(value)
        name = tool.name
        if not is_identifier(name):
            raise ValueError(f"Invalid tool name {name!r}: it must be a Python identifier and not a keyword; "
                             "rename it with dspy.Tool(fn, name='valid_name')")
        if is_reserved(name):
            raise ValueError(f"Tool name {name!r} clashes with a sandbox built-in; "
                             "rename it with dspy.Tool(fn, name='other_name')")
        if name in normalized:
            raise ValueError(f"Duplicate tool name {name!r}; give each tool its own name")
        normalized[name] = tool
    return normalized


def tool_docs(tools: dict[str, Tool]) -> str:
    """The tool list appended to the code-generation instructions."""
    if not tools:
        return ""
    lines = ["", "Tools (host functions; arguments and results are JSON):"]
    for tool in tools.values():
        params = ", ".join(f"{arg}: {schema.get('type', 'Any')}" for arg, schema in (tool.args or {}).items())
        desc = (tool.desc or "No description").replace("\n", " ")
        lines.append(f"- `{tool.name}({params})`: {desc}")
    return "\n".join(lines)


def tool_function(tool: Tool, run_coroutine: Callable[[Awaitable[Any]], Any]) -> Callable[..., Any]:
    """A host function for the sandbox that calls `tool` with positional or keyword arguments.

    `run_coroutine` runs an async tool to completion from the sandbox's worker
    thread (on the caller's event loop under `acall`).
    """
    arg_names = list(tool.args or {})

    def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) > len(arg_names):
            raise TypeError(f"{tool.name}() takes {len(arg_names)} arguments but {len(args)} were given")
        kwargs = {**dict(zip(arg_names, args)), **kwargs}
        if inspect.iscoroutinefunction(tool.func):
            return run_coroutine(tool.acall(**kwargs))
        return tool(**kwargs)

    call.__name__ = tool.name
    return call
