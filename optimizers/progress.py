"""A progress display for optimization runs, fed by the metric calls themselves.

Optimizers do not report progress in a common way, but every one of them
calls the metric, so a wrapped metric counts calls and keeps a running mean
per phase (baseline evaluation, compile, final evaluation).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class RunProgress:
    """Phases with a live count of metric calls and their mean score (or silent when disabled)."""

    def __init__(self, enabled: bool = True, console: Console | None = None):
        self.enabled = enabled
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("mean score {task.fields[mean]}"), TimeElapsedColumn(),
            console=console or Console(stderr=True), disable=not enabled,
        )
        self._lock = threading.Lock()
        self._task: Any = None
        self._sums: dict[Any, list[float]] = {}
        self.calls = 0
        self.scores: dict[str, list[float]] = {}  # every float score seen, per phase, in order
        self._phase: list[float] = []

    def __enter__(self) -> "RunProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    @contextlib.contextmanager
    def phase(self, description: str, total: int | None = None) -> Iterator[None]:
        """Count metric calls under `description` until the block ends."""
        task = self._progress.add_task(description, total=total, mean="-")
        with self._lock:
            self._task = task
            self._sums[task] = [0.0, 0]
            self._phase = self.scores.setdefault(description, [])
        try:
            yield
        finally:
            with self._lock:
                done = self._sums[task][1]
                self._task = None
            self._progress.update(task, total=max(done, total or 0) or 1, completed=max(done, total or 0) or 1)

    def observe(self, score: float) -> None:
        with self._lock:
            self.calls += 1
            task = self._task
            if task is None:
                return
            self._phase.append(score)
            sums = self._sums[task]
            sums[0] += score
            sums[1] += 1
            mean = f"{sums[0] / sums[1]:.2f}"
        self._progress.update(task, advance=1, mean=mean)

    def wrap(self, metric: Callable[..., Any]) -> Callable[..., Any]:
        """`metric` with the 5-argument signature, reporting each float score it returns."""
        from dspy_rlm.observability.tracking import as_float

        def observed(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
            result = metric(gold, pred, trace, pred_name, pred_trace)
            if pred_name is None:  # GEPA's per-predictor feedback calls re-score the same rows
                self.observe(as_float(result))
            return result

        observed.__name__ = getattr(metric, "__name__", "metric")
        return observed
