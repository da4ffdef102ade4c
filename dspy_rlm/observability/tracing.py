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

Every value stored is also sanitized (`sanitize`): a lone surrogate, which model code can write
(`"\\ud800"`) and UTF-8 cannot encode, would make MLflow drop the whole trace, so it becomes
U+FFFD; and each string passes the registered text filters (`add_text_filter`: the module
layer's secret scrubbing), in inputs, outputs, attributes and exception events alike.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from typing import Any, Callable, Iterator

from dspy_rlm import settings

SPAN_VALUE_CHARS = settings.SPAN_VALUE_CHARS  # changed at run time by set_span_value_limit
MAX_LIST_ITEMS = 50
_RLM_TRACES: dict[str, None] = {}  # trace ids holding an RLM call (insertion-ordered, bounded)
_MAX_REMEMBERED_TRACES = 10_000
_lock = threading.Lock()
_TEXT_FILTERS: list[Callable[[str], str]] = []  # run on every string stored in a span
_FENCED = re.compile(r"(?P<open>```[\w+-]*\n)(?P<body>.*)\n```", re.DOTALL)
# Room for a fence and the clip marker past the limit: a clipped value is never clipped again.
_FENCE_SLACK = 48


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
        if len(value) <= limit + _FENCE_SLACK:  # a fenced, already clipped value stays as it is
            return value
        if (fence := _FENCED.fullmatch(value)) is not None:  # clip inside the fence, so it still closes
            return f"{fence['open']}{clip(fence['body'], limit)}\n```"
        return f"{value[:limit]}... [{len(value):,} characters]"
    if isinstance(value, dict):
        return {key: clip(item, limit) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [clip(item, limit) for item in value[:MAX_LIST_ITEMS]]
        return items + ([f"... [{len(value):,} items]"] if len(value) > MAX_LIST_ITEMS else [])
    return value


def fenced(text: str, language: str = "") -> str:
    """`text` clipped and put in a Markdown code fence, so MLflow's trace view shows it as code.

    Unfenced, MLflow renders a span's string values as Markdown: a `# comment` becomes a
    heading and single newlines collapse into one paragraph."""
    return f"```{language}\n{clip(text)}\n```"


def unfenced(text: Any) -> Any:
    """The text inside a `fenced` value (anything else unchanged)."""
    fence = _FENCED.fullmatch(text) if isinstance(text, str) else None
    return fence["body"] if fence is not None else text


def add_text_filter(text_filter: Callable[[str], str]) -> None:
    """Pass every string stored in a span through `text_filter` (for example one scrubbing secrets)."""
    with _lock:
        if text_filter not in _TEXT_FILTERS:
            _TEXT_FILTERS.append(text_filter)


def sanitize(value: Any) -> Any:
    """`value` fit to store: no lone surrogate in its strings (also inside dicts and lists), filtered."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a surrogate pair joins into its character, a lone one becomes U+FFFD
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        for text_filter in _TEXT_FILTERS:
            value = text_filter(value)
        return value
    if isinstance(value, dict):
        return {sanitize(key) if isinstance(key, str) else key: sanitize(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(item) for item in value]
    return value


def _too_big(value: Any, limit: int) -> bool:
    if isinstance(value, str):
        return len(value) > limit + _FENCE_SLACK
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
            active.set_inputs(sanitize(clip(inputs)))
        yield active


def rename_active_span(expected: str, name: str) -> None:
    """Rename the active span to `name` if it is called `expected` (a span a DSPy callback just opened).

    MLflow's DSPy callback names spans after classes (`Predict.forward`, `Tool.llm_query`);
    an RLM's spans read better named after its parts (`generate_code`, `llm_query`)."""
    mlflow = _mlflow()
    active = mlflow.get_current_active_span() if mlflow is not None else None
    if active is None or active.name != expected:
        return
    try:
        active._span.update_name(name)  # MLflow's LiveSpan has no public rename; its OTel span does
    except Exception:  # a tracing helper must never break the call it observes
        pass


def set_outputs(active: Any, outputs: Any) -> None:
    if active is not None:
        active.set_outputs(sanitize(clip(outputs)))


def truncate_span_inputs(span_obj: Any) -> None:
    """An MLflow span processor that clips large inputs and outputs of every span (DSPy's own included).

    Install it with `mlflow.tracing.configure(span_processors=[truncate_span_inputs])`.
    It sanitizes them too (and the span's other attributes and events; see `sanitize`).
    """
    limit = SPAN_VALUE_CHARS
    if limit > 0:
        inputs = getattr(span_obj, "inputs", None)
        if _too_big(inputs, limit):
            span_obj.set_inputs(clip(inputs, limit))
        outputs = getattr(span_obj, "outputs", None)
        if _too_big(outputs, limit):
            span_obj.set_outputs(clip(outputs, limit))
    sanitize_span(span_obj)


def sanitize_span(span_obj: Any) -> None:
    """Sanitize every attribute (inputs and outputs included) and exception event of an ending span."""
    for key, value in (getattr(span_obj, "attributes", None) or {}).items():
        clean = sanitize(value)
        if clean != value:
            span_obj.set_attribute(key, clean)
    # MLflow keeps events on the OTel span, which has no public way to change one.
    events = getattr(getattr(getattr(span_obj, "_span", None), "_events", None), "_dq", None)
    for index, event in enumerate(list(events or ())):
        attributes = dict(event.attributes or {})
        clean = {key: sanitize(value) for key, value in attributes.items()}
        if clean != attributes:
            events[index] = type(event)(event.name, clean, event.timestamp)


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
