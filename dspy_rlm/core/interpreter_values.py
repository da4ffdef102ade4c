"""Values crossing `EryxInterpreter`'s boundary, converted by `dspy.PythonInterpreter`'s rules.

- variables passed to `execute()` go in as the sandbox carries them (JSON-like values and
  pydantic models, loaded through the read-only mount); others in pydantic's JSON mode;
- a tool's result reaches the code as DSPy's interpreter hands it over: pydantic models,
  dataclasses and named tuples become dicts, anything else JSON-able becomes its JSON value
  (tuples are lists, keys are strings), and what JSON cannot carry (an arbitrary object,
  NaN, a dataclass whose fields cannot be copied) becomes its `str()`. A str is passed as is,
  and None stays None (Pyodide can only give "").
- positional arguments from the code are bound to keywords where the tool's signature names
  them, because DSPy's tools (dspy.RLM wraps user tools as `invoke(**kwargs)`) take keywords.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from typing import Any

from dspy.primitives.code_interpreter import CodeInterpreterError
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from dspy_rlm.sandbox import INPUT_TYPES

__all__ = ["keywords", "loadable", "tool_result"]

def loadable(name: str, value: Any) -> Any:
    """`value` as the sandbox can carry it (JSON-like or pydantic); others via pydantic's JSON mode."""
    if isinstance(value, BaseModel):
        return _dump_model(value)  # now, so an unserializable model fails before the sandbox starts
    if isinstance(value, INPUT_TYPES):
        return value
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        raise CodeInterpreterError(f"Unsupported value type for variable {name!r}: {type(value).__name__}") from None


def tool_result(value: Any) -> Any:
    """A tool's result as `dspy.PythonInterpreter` gives it to the code (see the module docstring)."""
    if value is None or isinstance(value, str):
        return value
    value = _jsonable(value)
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):  # not JSON (an object, NaN): its text, as DSPy falls back to
        return str(value)


def keywords(tool: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """Positional arguments as keywords where the signature names them; the rest stay positional."""
    if not args:
        return (), kwargs
    try:
        params = list(inspect.signature(tool).parameters.values())
    except (TypeError, ValueError):
        return args, kwargs
    named = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    if any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) for p in params) or len(args) > len(named):
        return args, kwargs
    mapped = dict(zip(named, args))
    both = sorted(set(mapped) & set(kwargs))
    if both:
        raise TypeError(f"got multiple values for argument(s) {', '.join(both)}")
    return (), {**mapped, **kwargs}


def _jsonable(value: Any) -> Any:
    """DSPy's `_make_jsonable`: structured types to JSON values, recursively; unknown values unchanged."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, BaseModel):
        return _jsonable(_dump_model(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return _jsonable(dataclasses.asdict(value))
        except Exception:  # a field asdict cannot copy (a lock): left to the str() fallback
            return value
    if isinstance(value, tuple) and hasattr(value, "_fields") and hasattr(value, "_asdict"):
        return _jsonable(value._asdict())
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        return value


def _dump_model(value: BaseModel) -> Any:
    try:
        return value.model_dump(mode="json")
    except PydanticSerializationError as error:
        raise CodeInterpreterError(f"Unable to serialize {type(value).__name__} as JSON: {error}") from error
