"""One pass of a program over examples, as `Stabilize` needs it: scores, the RLM calls' trajectories, usage.

Every RLM call inside the program is seen through a DSPy callback (`on_module_end`), so a
program that holds several RLMs, or calls one several times, gives every trajectory.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import dspy
from dspy.utils.callback import BaseCallback

from dspy_rlm.core.rlm import RLM
from dspy_rlm.library.harvest import HarvestedRun

logger = logging.getLogger("dspy_rlm.optimizers")


@dataclass
class ExampleRun:
    """One example: its score, the RLM predictions it made, and how long it took."""

    label: str
    score: float
    predictions: list[dspy.Prediction] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # why the call raised, if it did (it scores 0)

    @property
    def root_calls(self) -> int:
        return sum(int((p.get("usage") or {}).get("root_calls", 0)) for p in self.predictions)

    @property
    def tokens(self) -> int:
        return sum(int((p.get("usage") or {}).get("total_tokens", 0)) for p in self.predictions)

    @property
    def solver_used(self) -> bool:
        return any((p.get("solver") or {}).get("used") for p in self.predictions)


@dataclass
class Pass:
    """A pass over a split: per-example runs, and their means."""

    runs: list[ExampleRun]

    @property
    def score(self) -> float:
        return sum(r.score for r in self.runs) / len(self.runs) if self.runs else 0.0

    def per_task(self, what: str) -> float:
        return sum(getattr(r, what) for r in self.runs) / len(self.runs) if self.runs else 0.0

    def harvested(self) -> list[HarvestedRun]:
        return [HarvestedRun(run.label, run.score, p.trajectory) for run in self.runs for p in run.predictions]

    def summary(self) -> dict[str, float]:
        return {"score": round(self.score, 4), "root_calls_per_task": round(self.per_task("root_calls"), 3),
                "tokens_per_task": round(self.per_task("tokens"), 1),
                "seconds_per_task": round(self.per_task("seconds"), 3),
                "solver_share": round(self.per_task("solver_used"), 3),
                "failed": sum(r.error is not None for r in self.runs)}


class _RLMCalls(BaseCallback):
    """Collects the prediction of every RLM call made while it is installed."""

    def __init__(self) -> None:
        self.predictions: list[dspy.Prediction] = []
        self._rlm_calls: set[str] = set()

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if isinstance(instance, RLM):
            self._rlm_calls.add(call_id)

    def on_module_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        if call_id in self._rlm_calls and isinstance(outputs, dspy.Prediction):
            self.predictions.append(outputs)


def run_pass(program: dspy.Module, examples: list[dspy.Example], metric: Callable[..., Any], split: str,
             num_threads: int = 1) -> Pass:
    """Run `program` on each example (under the caller's LM) and score it with `metric`."""
    lm, callbacks = dspy.settings.lm, list(dspy.settings.callbacks or [])

    def one(index: int) -> ExampleRun:
        collector = _RLMCalls()
        started = time.perf_counter()
        with dspy.context(lm=lm, callbacks=[*callbacks, collector]):
            try:
                prediction = program(**examples[index].inputs())
                score, error = _as_float(metric(examples[index], prediction)), None
            except Exception as problem:  # a failed call scores 0, as dspy.Evaluate counts it
                score, error = 0.0, f"{type(problem).__name__}: {problem}"
                logger.warning("Stabilize: %s[%d] failed: %s", split, index, error)
        return ExampleRun(f"{split}[{index}]", score, collector.predictions, round(time.perf_counter() - started, 4),
                          error)

    if num_threads <= 1:
        return Pass([one(i) for i in range(len(examples))])
    with ThreadPoolExecutor(num_threads) as pool:
        return Pass(list(pool.map(one, range(len(examples)))))


def runs_from_traces(trace_ids: list[str], score: str = "score") -> list[HarvestedRun]:
    """Runs to harvest from MLflow traces (of the active store): each trace's RLM trajectory, scored by its
    feedback `score` (what `observability.tracking.evaluate` attaches); a trace without one scores 0."""
    import mlflow

    from dspy_rlm.observability.viewer import load_trajectory

    runs = []
    for trace_id in trace_ids:
        trajectory, _ = load_trajectory(trace_id)
        trace = mlflow.get_trace(trace_id)
        values = [a.value for a in (trace.info.assessments or []) if a.name == score and a.value is not None]
        runs.append(HarvestedRun(trace_id, float(values[-1]) if values else 0.0, trajectory))
    return runs


def _as_float(score: Any) -> float:
    if isinstance(score, dspy.Prediction):
        score = score.get("score", 0.0)
    return float(score)
