"""The REPL transcript: what the root model reads and what it writes.

The root model never sees an input's value, only `variables_info` (name,
type, length and a short preview) and the history of earlier steps. It
answers with reasoning and a code block, which `extract_code` pulls out.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pydantic

from dspy_rlm.sandbox import truncate_middle

PREVIEW_CHARS = 300
MAX_LISTED_VARIABLES = 100  # names of the model's own variables shown in variables_info
_PYTHON_FENCES = {"", "python", "py", "python3", "py3"}
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


class CodeProblem(ValueError):
    """The model's answer holds no runnable Python; the message tells the model what to do."""


class SubQueryRecord(pydantic.BaseModel):
    """One `llm_query` (or one slot of `llm_query_batched`) made during a step."""

    prompt_chars: int
    response_chars: int
    seconds: float
    error: str | None = None


class Step(pydantic.BaseModel):
    """One REPL iteration, as kept in the trajectory."""

    iteration: int
    reasoning: str = ""
    code: str = ""
    output: str = ""
    error: str | None = None
    seconds: float = 0.0
    sub_queries: list[SubQueryRecord] = pydantic.Field(default_factory=list)


def describe_value(name: str, value: Any, desc: str = "") -> str:
    """One variable's entry in `variables_info`, without ever printing the whole value."""
    if isinstance(value, str):
        text = value
    else:
        text = _preview_json(value)
    lines = [f"Variable: `{name}` (access it in your code)", f"Type: {_type_name(value)}"]
    if desc:
        lines.append(f"Description: {desc}")
    if isinstance(value, (str, list, dict, tuple)):
        unit = "characters" if isinstance(value, str) else "items"
        lines.append(f"Length: {len(value):,} {unit}")
    lines.append(f"Preview:\n```\n{_head_tail(text, PREVIEW_CHARS)}\n```")
    return "\n".join(lines)


def _type_name(value: Any) -> str:
    if isinstance(value, pydantic.BaseModel):
        return f"dict (from {type(value).__name__})"
    return type(value).__name__


def _preview_json(value: Any) -> str:
    # Only the preview is rendered, so a huge list costs a slice, not a full dump.
    if isinstance(value, (list, tuple)) and len(value) > 20:
        value = list(value[:10])
    if isinstance(value, pydantic.BaseModel):
        value = value.model_dump(mode="json")
    try:
        return json.dumps(value, default=str, ensure_ascii=False)[: PREVIEW_CHARS * 4]
    except (TypeError, ValueError):
        return repr(value)[: PREVIEW_CHARS * 4]


def _head_tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ... {text[-half:]}"


def format_variables(inputs: dict[str, Any], descs: dict[str, str], extra: list[str] | None = None) -> str:
    """The `variables_info` text: every input, plus names the model created earlier."""
    parts = [describe_value(name, value, descs.get(name, "")) for name, value in inputs.items()]
    if extra:
        # Capped: code that creates thousands of globals must not blow up every later prompt.
        listed = ", ".join(extra[:MAX_LISTED_VARIABLES])
        if len(extra) > MAX_LISTED_VARIABLES:
            listed += f", ... and {len(extra) - MAX_LISTED_VARIABLES:,} more"
        parts.append("Variables you created earlier (still in the REPL): " + listed)
    return "\n\n".join(parts)


def format_history(steps: list[Step], max_output_chars: int) -> str:
    """The `repl_history` text: each step's reasoning, code and (truncated) output."""
    if not steps:
        return "You have not run any code yet."
    blocks = []
    for step in steps:
        reasoning = f"Reasoning: {step.reasoning}\n" if step.reasoning else ""
        output = truncate_middle(step.output, max_output_chars)
        blocks.append(
            f"=== Step {step.iteration} ===\n{reasoning}Code:\n```python\n{step.code}\n```\n"
            f"Output ({len(step.output):,} chars):\n{output}"
        )
    return "\n\n".join(blocks)


def format_iteration(iteration: int, max_iters: int, calls_left: int) -> str:
    """The `iteration` text: this step's number of the most, and the sub-model calls left."""
    return f"{iteration}/{max_iters}; sub-model calls left: {calls_left}"


def extract_code(text: str | None) -> str:
    """Pull the Python code out of the model's `code` field.

    Raises CodeProblem when there is no code, the block is empty, or the fence
    names another language; the message is shown to the model as the step's output.
    """
    if text is None or not text.strip():
        raise CodeProblem("Your answer had no code. Write the next step as Python in a ```python block.")
    if "```" not in text:
        return text.strip()
    match = _FENCE.search(text)
    if match is None:
        return text.replace("```", "").strip()
    language, body = match.group(1).lower(), match.group(2).strip()
    if language not in _PYTHON_FENCES:
        raise CodeProblem(
            f"Your code block is marked ```{language}, but only Python runs here. "
            "Rewrite the step as Python in a ```python block."
        )
    if not body:
        raise CodeProblem("Your code block was empty. Write the next step as Python in a ```python block.")
    return body
