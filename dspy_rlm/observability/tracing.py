"""MLflow spans for RLM calls, iterations, code execution and sub-queries.

Spans are opened only inside an active trace (for example under
`mlflow.dspy.autolog()`), so tracing costs nothing when it is off.

Large values are truncated so a 10 MB context does not make a 10 MB trace.
The limit is `DSPY_RLM_SPAN_VALUE_CHARS` (default 2000 characters per string,
0 turns truncation off), or `set_span_value_limit(n)` at run time. It applies
to our own spans as they are made, and to every other span of a trace that
contains an RLM call (DSPy's `RLM.forward`, `Predict.forward` and
`LM.__call__` spans under autolog) through a span processor that the first
RLM span installs by itself. `truncate_span_inputs` is the same processor for
all spans, for users who want it everywhere:
`mlflow.tracing.configure(span_processors=[truncate_span_inputs])`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, Iterator

from dspy_rlm import settings

SPAN_VALUE_CHARS = settings.SPAN_VALUE_CHARS  # changed at run time by set_span_value_limit
MAX_LIST_ITEMS = 50
_RLM_TRACES: dict[str, None] = {}  # trace ids holding an RLM call (insertion-ordered, bounded)
_MAX_REMEMBERED_TRACES = 10_000
_lock = threading.Lock()


def set_span_value_limit(chars: int) -> None:
    """Longest string kept in span inputs and outputs; 0 (or less) keeps everything."""
    global SPAN_VALUE_CHARS
    SPAN_VALUE_CHARS = int(chars)


def clip(value: Any, limit: int | None = None) -> Any:
    """Shorten long strings (also inside dicts and lists) and long lists, for span inputs and outputs."""
    limit = SPAN_VALUE_CHARS if limit is None else limit
    if limit <= 0:
        return value
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        return f"{value[:limit]}... [{len(value):,} characters]"
    if isinstance(value, dict):
        return {key: clip(item, limit) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [clip(item, limit) for item in value[:MAX_LIST_ITEMS]]
        return items + ([f"... [{len(value):,} items]"] if len(value) > MAX_LIST_ITEMS else [])
    return value


def _too_big(value: Any, limit: int) -> bool:
    if isinstance(value, str):
        return len(value) > limit
    if isinstance(value, dict):
        return any(_too_big(item, limit) for item in value.values())
    if isinstance(value, (list, tuple)):
        return len(value) > MAX_LIST_ITEMS or any(_too_big(item, limit) for item in value)
    return False


def _mlflow() -> Any:
    """mlflow if something already imported it, else None.

    Importing mlflow costs ~1.7 s and ~120 MB; no trace can be active before
    someone imports it, so we never import it just to find that out.
    """
    return sys.modules.get("mlflow")


def tracing_active() -> bool:
    mlflow = _mlflow()
    return mlflow is not None and mlflow.get_current_active_span() is not None


@contextlib.contextmanager
def span(name: str, span_type: str = "UNKNOWN", inputs: Any = None, attributes: dict | None = None) -> Iterator[Any]:
    """Open a child span of the active trace; yield None when no trace is active."""
    if not tracing_active():
        yield None
        return
    mlflow = _mlflow()
    _note_rlm_trace(mlflow.get_current_active_span().trace_id)
    with mlflow.start_span(name=name, span_type=span_type, attributes=attributes) as active:
        if inputs is not None:
            active.set_inputs(clip(inputs))
        yield active


def set_outputs(active: Any, outputs: Any) -> None:
    if active is not None:
        active.set_outputs(clip(outputs))


def truncate_span_inputs(span_obj: Any) -> None:
    """An MLflow span processor that clips large inputs and outputs of every span (DSPy's own included).

    Install it with `mlflow.tracing.configure(span_processors=[truncate_span_inputs])`.
    """
    limit = SPAN_VALUE_CHARS
    if limit <= 0:
        return
    inputs = getattr(span_obj, "inputs", None)
    if _too_big(inputs, limit):
        span_obj.set_inputs(clip(inputs, limit))
    outputs = getattr(span_obj, "outputs", None)
    if _too_big(outputs, limit):
        span_obj.set_outputs(clip(outputs, limit))


def truncate_rlm_spans(span_obj: Any) -> None:
    """The processor RLM calls install: clips only the spans of traces that contain an RLM call."""
    trace_id = getattr(span_obj, "trace_id", None)
    if trace_id not in _RLM_TRACES:
        return
    truncate_span_inputs(span_obj)
    if getattr(span_obj, "parent_id", None) is None:  # the root span ends last: forget the trace
        with _lock:
            _RLM_TRACES.pop(trace_id, None)


def install_truncation(processor: Any = truncate_rlm_spans) -> None:
    """Add a truncation processor to MLflow's tracing config, keeping the user's processors."""
    import mlflow
    from mlflow.tracing.config import get_config

    with _lock:
        current = list(get_config().span_processors)
        if truncate_span_inputs in current or processor in current:
            return
        mlflow.tracing.configure(span_processors=[*current, processor])


def _note_rlm_trace(trace_id: str) -> None:
    if trace_id in _RLM_TRACES:
        return
    with _lock:
        _RLM_TRACES[trace_id] = None
        while len(_RLM_TRACES) > _MAX_REMEMBERED_TRACES:
            _RLM_TRACES.pop(next(iter(_RLM_TRACES)))
    try:
        install_truncation()
    except Exception:  # a tracing helper must never break the call it observes
        pass
