"""Ending a run: SUBMIT / FINAL / FINAL_VAR, and typed validation of what they deliver.

The guest functions are generated from the signature's output names and run
on top of the sandbox's `_rlm_submit` primitive. What they deliver is checked
on the host with pydantic, against the signature's types; a failure goes back
to the model as an observation and the loop continues.
"""

from __future__ import annotations

import ast
import enum
import json
import types
from typing import Any, Callable, Literal, Union, get_args, get_origin

import pydantic
from dspy.adapters.utils import parse_value

from dspy_rlm import settings
from dspy_rlm.errors import OutputError

TERMINATION_NAMES = ("SUBMIT", "FINAL", "FINAL_VAR")

# The names are read at call time, so a host can change the outputs by assigning
# `_RLM_OUTPUTS[:]` without redefining the functions.
_GUEST_TEMPLATE = '''
_RLM_OUTPUTS = {names!r}

def SUBMIT(*args, **kwargs):
    """Finish the run with the final outputs: SUBMIT(name=value, ...) or positionally."""
    names = _RLM_OUTPUTS
    call = ", ".join(f"{{name}}=..." for name in names)
    if len(args) > len(names):
        raise TypeError(f"SUBMIT() takes {{len(names)}} outputs ({{call}}) but {{len(args)}} were given")
    values = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(f"SUBMIT() got an unexpected keyword argument {{key!r}}; the outputs are: {{call}}")
        if key in values:
            raise TypeError(f"SUBMIT() got multiple values for argument {{key!r}}")
        values[key] = value
    missing = [name for name in names if name not in values]
    if missing:
        raise TypeError(f"SUBMIT() missing required argument(s): you are missing {{', '.join(missing)}}; "
                        f"call SUBMIT({{call}})")
    _rlm_submit(values)

def FINAL(value):
    """Finish the run with `value` as the single output."""
    if len(_RLM_OUTPUTS) != 1:
        raise TypeError("FINAL(value) works only when there is one output; call SUBMIT(name=value, ...)")
    _rlm_submit({{_RLM_OUTPUTS[0]: value}})

def FINAL_VAR(name):
    """Finish the run with the variable called `name` as the single output."""
    import sys as _sys
    if not isinstance(name, str):
        raise TypeError("FINAL_VAR takes a variable's name as a string, for example FINAL_VAR('answer')")
    frame = _sys._getframe(1)
    scope = {{**frame.f_globals, **frame.f_locals}}
    if name not in scope:
        raise NameError(f"FINAL_VAR({{name!r}}): there is no variable called {{name!r}}")
    FINAL(scope[name])
'''


def termination_code(output_names: list[str]) -> str:
    """Guest source defining SUBMIT, FINAL and FINAL_VAR for these outputs."""
    return _GUEST_TEMPLATE.format(names=list(output_names))


def parse_submission(payload: Any, output_fields: dict[str, Any]) -> dict[str, Any]:
    """Validate and coerce a submission against the signature's output fields."""
    if not isinstance(payload, dict):
        raise OutputError(f"[Error] The submission must map output names to values, got {type(payload).__name__}.")
    missing = [name for name in output_fields if name not in payload]
    if missing:
        raise OutputError(f"[Error] Missing output fields: {missing}. Call SUBMIT with all of them.")
    parsed, problems = {}, []
    for name, field in output_fields.items():
        annotation = field.annotation
        try:
            parsed[name] = parse_field(payload[name], annotation)
        except _Unreadable as exc:
            problems.append(f"{name}: expected {_type_label(annotation)}, got {exc}")
        except Exception as exc:  # pydantic and json errors alike go back to the model
            problems.append(f"{name}: expected {_type_label(annotation)}, got {_short(payload[name])}: {_first_line(exc)}")
    if problems:
        raise OutputError("[Type Error] " + "; ".join(problems) + ". Fix the values and call SUBMIT again.")
    return parsed


class _Unreadable(ValueError):
    """Submitted text too long to repair, and neither JSON nor a Python literal."""


def parse_field(value: Any, annotation: Any) -> Any:
    """One submitted value as `annotation`, like DSPy's `parse_value` but in linear time.

    `parse_value` repairs text with `json_repair`, which is quadratic on some text; only
    text up to `settings.SUBMIT_REPAIR_CHARS` goes there. Longer text is read as JSON, then
    as a Python literal (up to `settings.SUBMIT_LITERAL_CHARS`), then taken as it is."""
    if not (isinstance(value, str) and len(value) > settings.SUBMIT_REPAIR_CHARS and _repaired(value, annotation)):
        return parse_value(value, annotation)
    candidate = _read_literal(value)
    if candidate is not value:
        return pydantic.TypeAdapter(annotation).validate_python(candidate)
    try:
        return pydantic.TypeAdapter(annotation).validate_python(value)  # a type that takes the text itself
    except pydantic.ValidationError:
        raise _Unreadable(
            f"{len(value):,} characters of text that is not valid JSON (only text up to "
            f"{settings.SUBMIT_REPAIR_CHARS:,} characters is repaired); submit the value itself "
            f"(a {_type_label(annotation)}), not its text"
        ) from None


def _repaired(value: str, annotation: Any) -> bool:
    """Whether `parse_value` would hand this text to json_repair (it does unless the type takes text)."""
    if annotation is str or isinstance(annotation, enum.EnumMeta):
        return False
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType) and str in args and type(None) in args:
        return False
    return not (origin is Literal and value in args)


def _read_literal(text: str) -> Any:
    """`text` read as JSON or as a Python literal, in linear time; `text` itself when it is neither."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    if len(text) <= settings.SUBMIT_LITERAL_CHARS:
        try:
            return ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
    return text


def _type_label(annotation: Any) -> str:
    if get_args(annotation):  # list[int], not list
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value[: limit + 1] if isinstance(value, str) else value)  # not the repr of 50 MB of text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3])[:300] if lines else type(exc).__name__


def validation_problem(outputs: dict[str, Any], validate: Callable[[dict[str, Any]], str | None] | None) -> str | None:
    """What the host's `validate` says against `outputs` (None: accepted, or no validator). A validator
    that raises is the program's bug: its error is the problem, never raised into the call."""
    if validate is None:
        return None
    try:
        return validate(dict(outputs)) or None
    except Exception as error:
        return f"the validator failed on this submission ({type(error).__name__}: {error})"


def validated(outputs: dict[str, Any], validate: Callable[[dict[str, Any]], str | None] | None) -> dict[str, Any]:
    """`outputs` if the host's `validate` accepts them (or there is none); else an `OutputError` with its
    message, which the model is shown as it is shown a type error."""
    problem = validation_problem(outputs, validate)
    if problem:
        raise OutputError(f"Your submission was not accepted: {problem}. Fix it and SUBMIT again.")
    return outputs
