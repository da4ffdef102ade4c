"""MLflow spans for RLM calls, iterations, code execution and sub-queries.

Spans are opened only inside an active trace (for example under
`mlflow.dspy.autolog()`), so tracing costs nothing when it is off. Large
values are truncated so a 10 MB context does not make a 10 MB trace.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

try:
    import mlflow
except ImportError:  # mlflow is a dependency, but tracing must never be what breaks a run
    mlflow = None

SPAN_VALUE_CHARS = int(os.environ.get("DSPY_RLM_SPAN_VALUE_CHARS", "2000"))


def clip(value: Any, limit: int | None = None) -> Any:
    """Shorten long strings (also inside dicts and lists) for span inputs and outputs."""
    limit = SPAN_VALUE_CHARS if limit is None else limit
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        return f"{value[:limit]}... [{len(value):,} characters]"
    if isinstance(value, dict):
        return {key: clip(item, limit) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [clip(item, limit) for item in value[:50]]
        return items + ([f"... [{len(value):,} items]"] if len(value) > 50 else [])
    return value


def tracing_active() -> bool:
    return mlflow is not None and mlflow.get_current_active_span() is not None


@contextlib.contextmanager
def span(name: str, span_type: str = "UNKNOWN", inputs: Any = None, attributes: dict | None = None) -> Iterator[Any]:
    """Open a child span of the active trace; yield None when no trace is active."""
    if not tracing_active():
        yield None
        return
    with mlflow.start_span(name=name, span_type=span_type, attributes=attributes) as active:
        if inputs is not None:
            active.set_inputs(clip(inputs))
        yield active


def set_outputs(active: Any, outputs: Any) -> None:
    if active is not None:
        active.set_outputs(clip(outputs))


def truncate_span_inputs(span_obj: Any) -> None:
    """An MLflow span processor that clips large inputs of every span (DSPy's own included).

    Install it with `mlflow.tracing.configure(span_processors=[truncate_span_inputs])`.
    """
    inputs = getattr(span_obj, "inputs", None)
    if isinstance(inputs, dict) and any(isinstance(v, str) and len(v) > SPAN_VALUE_CHARS for v in inputs.values()):
        span_obj.set_inputs(clip(inputs))
