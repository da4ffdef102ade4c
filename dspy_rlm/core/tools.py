"""User tools and the names a run reserves in the sandbox.

Tools are host functions the model's code calls with JSON arguments. They go
through `dspy.Tool`, so DSPy callbacks (and MLflow's Tool spans) see them.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Awaitable, Callable

from dspy.adapters.types.tool import Tool

from dspy_rlm.core.outputs import TERMINATION_NAMES
from dspy_rlm.sandbox import is_identifier

SUB_QUERY_NAMES = ("llm_query", "llm_query_batched", "llm_batch")
RECURSION_NAMES = ("rlm_query", "rlm_query_batched")  # child runs (core/recursion.py)
RUN_VARIABLES = ("full_history", "session_history")  # set by compaction and by sessions
# Names the sandbox itself defines, or that guest code relies on being the stdlib's.
RESERVED_NAMES = frozenset(
    {*SUB_QUERY_NAMES, *RECURSION_NAMES, *RUN_VARIABLES, *TERMINATION_NAMES, "print", "invoke", "list_callbacks",
     "asyncio", "json", "re", "os", "sys"}
)
RESERVED_RESULT_NAMES = frozenset({"trajectory", "final_reasoning", "usage", "solver"})  # solver: core/solver.py


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


RECURSION_DOCS = """
- `rlm_query(prompt, context=None) -> str`: hand a sub-task to a child run with its own REPL, where `prompt` and `context` are variables; it writes code like you and returns its answer. Use it for a part that needs its own search (one document of many); use `llm_query` for a question a model answers by reading.
- `rlm_query_batched(prompts, contexts=None) -> list[str]`: many child runs at once; a failed one's slot holds "[ERROR] ..."."""
SUB_MODEL_DOCS = """
- `llm_query(prompt, model=name)` and `llm_query_batched(prompts, model=name)` ask a named sub-model: {names}."""


def function_docs(tools: dict[str, Tool], *, recursion: bool = False, sub_models: list[str] | tuple = ()) -> str:
    """What the code-generation instructions add to the sandbox's functions: child runs (`max_depth >= 2`),
    named sub-models (`sub_lms`), and the user's tools."""
    docs = RECURSION_DOCS if recursion else ""
    if sub_models:
        docs += SUB_MODEL_DOCS.format(names=", ".join(f'"{name}"' for name in sorted(sub_models)))
    return docs + tool_docs(tools)


def tool_docs(tools: dict[str, Tool]) -> str:
    """The tool list appended to the code-generation instructions."""
    if not tools:
        return ""
    lines = ["", "Tools (host functions; arguments and results are JSON):"]
    for tool in tools.values():
        desc = (tool.desc or "No description").replace("\n", " ")
        if getattr(tool, "side_effects", False):  # dspy_rlm.Tool(fn, side_effects=True): see core/approval.py
            desc += " [Has side effects: each call must be approved first and may be refused with an error.]"
        lines.append(f"- `{tool.name}{_signature_text(tool)}`: {desc}")
    return "\n".join(lines)


def _signature_text(tool: Tool) -> str:
    """`(pattern: str, limit: int = 3) -> list[Hit]`: the function's own signature, as the model would call it.

    A tool whose arguments were given as a JSON schema (or whose function has no signature to read)
    shows the schema's types and defaults instead."""
    try:
        signature = inspect.signature(tool.func)  # a callable object's is its __call__'s, without self
    except (TypeError, ValueError):
        signature = None
    if signature is None or list(signature.parameters) != list(tool.args or {}):
        params = []
        for arg, schema in (tool.args or {}).items():
            default = f" = {schema['default']!r}" if "default" in schema else ""
            params.append(f"{arg}: {schema.get('type', 'Any')}{default}")
        return f"({', '.join(params)})"
    shown = signature.replace(
        parameters=[p.replace(annotation=_Shown(p.annotation)) if p.annotation is not p.empty else p
                    for p in signature.parameters.values()],
        return_annotation=(_Shown(signature.return_annotation) if signature.return_annotation is not signature.empty
                           else signature.empty),
    )
    return str(shown)


class _Shown:
    """An annotation as written in the source, without module paths (`list[Hit]`, not `list[app.models.Hit]`)."""

    def __init__(self, annotation: Any):
        if isinstance(annotation, str):  # postponed (`from __future__ import annotations`): the source text
            self.text = annotation
        elif isinstance(annotation, type):
            self.text = annotation.__qualname__
        else:
            self.text = _MODULE_PATH.sub("", str(annotation))

    def __repr__(self) -> str:
        return self.text


_MODULE_PATH = re.compile(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])")


def tool_function(tool: Tool, run_coroutine: Callable[[Awaitable[Any]], Any]) -> Callable[..., Any]:
    """A host function for the sandbox that calls `tool` with positional or keyword arguments.

    `run_coroutine` runs an async tool to completion from the sandbox's worker
    thread (on the caller's event loop under `acall`).
    """
    signature = _call_signature(tool)

    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs = _bind(tool.name, signature, args, kwargs)
        if inspect.iscoroutinefunction(tool.func):
            return run_coroutine(tool.acall(**kwargs))
        return tool(**kwargs)

    call.__name__ = tool.name
    return call


def _call_signature(tool: Tool) -> inspect.Signature:
    """How `tool` binds arguments: its function's signature, or (when the Tool declares other
    `args`, or the function has none to read) one built from the declared names, all optional."""
    declared = list(tool.args or {})
    try:
        signature = inspect.signature(tool.func)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        named = [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if all(name in signature.parameters for name in declared) and set(named) <= set(declared):
            # By name only: a Tool is called with keywords, so positional-only parameters bind as keywords too.
            return signature.replace(parameters=[
                p.replace(kind=p.POSITIONAL_OR_KEYWORD) if p.kind is p.POSITIONAL_ONLY else p
                for p in signature.parameters.values()])
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(name, keyword, default=None) for name in declared]
    if tool.has_kwargs or signature is None:
        parameters.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(parameters)


def _bind(name: str, signature: inspect.Signature, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments `args` and `kwargs` bind to, with Python's TypeErrors (named after the tool)."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{name}(): {error}") from None
    named: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        kind = signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise TypeError(f"{name}(): *{key} cannot be passed to a tool; pass a list instead")
        else:
            named[key] = value
    return named
