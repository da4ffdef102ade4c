"""Helpers for tests that read an MLflow store back (each test module uses its own sqlite store)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import dspy
import mlflow


@contextlib.contextmanager
def mlflow_store(folder: Path, experiment: str, *, autolog: bool = True) -> Iterator[str]:
    """A fresh sqlite store in `folder` with DSPy autologging on; everything global is restored after."""
    from dspy_rlm.observability import tracing
    from dspy_rlm.observability.tracking import setup_tracking

    previous_uri = mlflow.get_tracking_uri()
    previous_limit = tracing.SPAN_VALUE_CHARS
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    try:
        setup_tracking(uri, experiment, autolog=autolog)
        yield uri
    finally:
        mlflow.flush_trace_async_logging()
        mlflow.dspy.autolog(disable=True, silent=True)
        dspy.settings.configure(track_usage=False)
        mlflow.tracing.config.reset_config()
        tracing.set_span_value_limit(previous_limit)
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous_uri)


def traces(**search: Any) -> list[Any]:
    """Every trace of the active experiment, oldest first."""
    mlflow.flush_trace_async_logging()
    return mlflow.search_traces(return_type="list", order_by=["timestamp_ms ASC"], **search)


def tree(trace: Any) -> list[str]:
    """The span tree as indented lines, `name [TYPE]`, children in start order."""
    spans = trace.data.spans
    children: dict[str | None, list[Any]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s.start_time_ns, s.name)):
            lines.append("  " * depth + f"{span.name} [{span.span_type}]")
            walk(span.span_id, depth + 1)

    walk(None, 0)
    return lines


def spans_named(trace: Any, name: str) -> list[Any]:
    return [span for span in trace.data.spans if span.name == name]


def parent_of(trace: Any, span: Any) -> Any:
    by_id = {s.span_id: s for s in trace.data.spans}
    return by_id.get(span.parent_id)


def ancestors(trace: Any, span: Any) -> list[str]:
    """Names from the span's parent up to the root."""
    names, current = [], parent_of(trace, span)
    while current is not None:
        names.append(current.name)
        current = parent_of(trace, current)
    return names


def shouting_root_lm():
    """A root model for served programs: SUBMITs the context upper-cased if its instructions say SHOUT,
    else lower-cased; so the answer shows whether the program's saved state was loaded."""
    from dspy_rlm import ScriptedLM

    def answer(request):
        call = "context.upper()" if "SHOUT" in request.system else "context.lower()"
        return {"reasoning": "r", "code": f"```python\nSUBMIT(answer={call})\n```"}

    return ScriptedLM(answer, model="scripted/root")
