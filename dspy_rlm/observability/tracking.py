"""Experiment tracking for RLM programs with MLflow.

`setup_tracking` points MLflow at a store (default: `sqlite:///mlflow.db` in
the working folder, with its own artifact folder beside it), selects an
experiment and turns on DSPy autologging with span truncation. The other
helpers fill the gaps autolog leaves (see the project's MLflow notes):
optimizer settings as params, datasets as MLflow datasets, usage totals,
nested runs started from optimizer worker threads, and evaluation scores
attached to the traces of the rows they score.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dspy

from dspy_rlm import settings
from dspy_rlm.core.budget import add_counts

DEFAULT_TRACKING_URI = settings.TRACKING_URI
PARAM_VALUE_CHARS = 6000  # MLflow's limit for one param value
_SECRET = re.compile(r"api[_-]?key|secret|token(?!s)|password|authorization|bearer|credential", re.IGNORECASE)
REDACTED = "[REDACTED]"


def setup_tracking(
    tracking_uri: str | None = None,
    experiment: str = "dspy-rlm",
    *,
    autolog: bool = True,
    log_traces_from_compile: bool = False,
) -> str:
    """Use `tracking_uri` (default `sqlite:///mlflow.db`) and `experiment`; return the experiment id.

    With `autolog`, DSPy autologging records compiles, evaluations and traces,
    and the span truncation processor is installed.
    """
    import mlflow

    from dspy_rlm.observability.tracing import install_truncation

    mlflow.set_tracking_uri(tracking_uri or DEFAULT_TRACKING_URI)
    experiment_id = use_experiment(experiment)
    if autolog:
        mlflow.dspy.autolog(log_compiles=True, log_evals=True, log_traces_from_compile=log_traces_from_compile,
                            silent=True)
        install_truncation()
    return experiment_id


def use_experiment(name: str) -> str:
    """Make `name` the active experiment, creating it with its own artifact folder (see
    `artifact_location`) if needed; return its id. Use this rather than `mlflow.set_experiment`,
    which would put a new experiment's artifacts in `./mlruns`, shared by every store there."""
    import mlflow

    existing = mlflow.get_experiment_by_name(name)
    if existing is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location(mlflow.get_tracking_uri(), name))
    else:
        experiment_id = existing.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """For a sqlite store, `<db folder>/<db name>-artifacts/<experiment>`, so two stores in one
    folder never share (and overwrite) MLflow's default `./mlruns`. Other stores keep their default."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///"):]).resolve()
    slug = re.sub(r"[^\w.-]+", "-", experiment).strip("-") or "experiment"
    return (db.parent / f"{db.stem}-artifacts" / slug).as_uri()


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` with every secret-looking key's value replaced (recursively)."""
    if key and _SECRET.search(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`; secrets redacted, values cut to MLflow's param limit."""
    flat: dict[str, str] = {}
    for key, value in redact(dict(params)).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[name] = text if len(text) <= PARAM_VALUE_CHARS else text[: PARAM_VALUE_CHARS - 20] + "... [truncated]"
    return flat


def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    """Log nested params to the active run (flattened, secrets redacted)."""
    import mlflow

    flat = flatten(params, prefix)
    items = list(flat.items())
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        mlflow.log_params(dict(items[start:start + 100]))


def log_examples(examples: Iterable[dspy.Example], name: str, context: str) -> None:
    """Log `examples` as an MLflow dataset input of the active run (`context`: training, validation, testing)."""
    import mlflow
    import pandas as pd

    examples = list(examples)
    rows = [{k: _cell(v) for k, v in example.toDict().items()} for example in examples]
    labels = [k for k in examples[0].labels().keys()] if examples else []
    frame = pd.DataFrame(rows)
    with warnings.catch_warnings():  # MLflow's hint about integer columns and missing values
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        dataset = mlflow.data.from_pandas(frame, name=name, targets=labels[0] if labels else None)
    mlflow.log_input(dataset, context=context)


def _cell(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return json.dumps(value, default=str)


@contextlib.contextmanager
def runs_follow_threads(run: Any = None) -> Iterator[None]:
    """Threads started inside this block see `run` (default: the active run) as their active run.

    MLflow's active-run stack is thread-local, so runs that optimizers start in
    their worker threads (autolog's per-evaluation runs under GEPA) would
    otherwise become top-level runs, and their scores would miss the parent.
    Threads that picked up `run` drop it again when the block ends.
    """
    import mlflow
    from mlflow.tracking import fluent

    run = run or mlflow.active_run()
    stack = getattr(fluent, "_active_run_stack", None)
    if run is None or not hasattr(stack, "default_factory"):
        yield
        return
    previous, handed_out, lock = stack.default_factory, [], threading.Lock()

    def inherited() -> list:
        inherited_stack = [run]
        with lock:
            handed_out.append(inherited_stack)
        return inherited_stack

    stack.default_factory = inherited
    try:
        yield
    finally:
        stack.default_factory = previous
        with lock:
            for inherited_stack in handed_out:
                if run in inherited_stack:
                    inherited_stack.remove(run)


def usage_summary(usage_by_model: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per-model `calls`, `prompt_tokens`, `completion_tokens`, `total_tokens` from a `UsageTracker`'s data
    (a mapping of model -> list of usage entries)."""
    summary: dict[str, dict[str, int]] = {}
    for model, entries in usage_by_model.items():
        totals = summary.setdefault(model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        for entry in entries:
            totals["calls"] += 1
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = entry.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    totals[key] += value
    return summary


def add_usage(total: dict[str, dict[str, int]], part: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Add per-model counts (`{model: {"calls": n, "total_tokens": n, ...}}`) into `total`."""
    for model, counts in part.items():
        add_counts(total.setdefault(model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
                   counts)
    return total


class _ScoreRecorder:
    """Wraps a metric for `dspy.Evaluate`: returns a float, and remembers (trace id, score) per row."""

    def __init__(self, metric: Any, name: str):
        self.metric = metric
        self.__name__ = name
        self.pairs: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def __call__(self, gold: dspy.Example, pred: dspy.Prediction, trace: Any = None) -> float:
        score = as_float(self.metric(gold, pred, trace))
        try:
            import mlflow

            trace_id = mlflow.get_last_active_trace_id(thread_local=True)
        except Exception:
            trace_id = None
        if trace_id:
            with self._lock:
                self.pairs.append((trace_id, score))
        return score


def as_float(score: Any) -> float:
    """A metric's result as a float (`dspy.Prediction(score=...)`, bool and None included)."""
    if isinstance(score, dspy.Prediction):
        score = score.get("score", 0.0)
    return float(score or 0.0)


def evaluate(program: dspy.Module, devset: list[dspy.Example], metric: Any, *, name: str = "eval",
             num_threads: int = 1, metric_name: str = "score") -> dspy.Prediction:
    """`dspy.Evaluate` in a nested run called `name` (when a run is active), with each row's score
    attached to that row's trace as feedback `metric_name`. Returns the `EvaluationResult`
    (score in percent, results as (example, prediction, score))."""
    import mlflow

    recorder = _ScoreRecorder(metric, metric_name)
    evaluator = dspy.Evaluate(devset=devset, metric=recorder, num_threads=num_threads, display_progress=False,
                              display_table=False, failure_score=0.0, provide_traceback=False)
    if mlflow.active_run() is None:
        return evaluator(program)
    with mlflow.start_run(run_name=name, nested=True):
        result = evaluator(program)
        mlflow.log_metric("score", float(result.score))
        log_library(program)
    attach_scores(recorder.pairs, metric_name)
    return result


def attach_scores(pairs: list[tuple[str, float]], name: str) -> int:
    """Log each (trace id, score) as feedback `name` on its trace, unless autolog already did.

    With MLflow's asynchronous trace logging (the default), a trace is not yet in
    the store when the metric runs, so autolog's own attempt is dropped; this runs
    after a flush instead. Returns how many were attached.
    """
    import mlflow
    from mlflow.entities import AssessmentSource

    if not pairs:
        return 0
    mlflow.flush_trace_async_logging()
    attached = 0
    for trace_id, score in pairs:
        try:
            trace = mlflow.get_trace(trace_id)
            if trace is None or any(a.name == name for a in (trace.info.assessments or [])):
                continue
            mlflow.log_feedback(trace_id=trace_id, name=name, value=score,
                                source=AssessmentSource(source_type="CODE", source_id=name))
            attached += 1
        except Exception:  # a missing score on one trace must not fail the evaluation
            continue
    return attached


def log_library(program: dspy.Module, artifact_path: str = "library") -> int:
    """Log the code library of every RLM in `program` as artifacts of the active run (the folder as
    `CodeLibrary.write` lays it out; `<artifact_path>/<module name>/` when the RLMs hold different
    libraries). Returns how many libraries were logged."""
    import tempfile

    import mlflow

    from dspy_rlm.core.rlm import RLM

    modules = [("self", program)] if isinstance(program, RLM) else []
    modules += [(name, m) for name, m in program.named_sub_modules() if isinstance(m, RLM) and m is not program]
    libraries = {}
    for name, module in modules:
        if module.library is not None:
            libraries.setdefault(module.library.content_hash, (name, module.library))
    for name, library in libraries.values():
        with tempfile.TemporaryDirectory() as folder:
            library.write(folder)
            where = artifact_path if len(libraries) == 1 else f"{artifact_path}/{name}"
            mlflow.log_artifacts(folder, artifact_path=where)
            mlflow.set_tag("dspy_rlm.library_hash" if len(libraries) == 1 else f"dspy_rlm.library_hash.{name}",
                           library.content_hash)
    return len(libraries)
