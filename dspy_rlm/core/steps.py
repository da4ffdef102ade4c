"""`run_steps`: the loop of one run, the root's (`RLM.forward`) and every child's (`core/recursion.py`).

`run` is an `RLMRun` (typed `Any`: the run module imports the recursion module, which uses this one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dspy

from dspy_rlm.observability.tracing import set_outputs, span


def run_steps(run: Any, on_submitted: Callable[[dict[str, Any]], None] | None = None) -> dspy.Prediction:
    """The loop of a call, root or child: generate and execute steps until SUBMIT or a limit, then end as
    `on_limit` says. `on_submitted` sees the outputs first (the root streams them under `dspy.streamify`)."""
    for iteration in range(1, run.config.max_iters + 1):
        if run.limit_reached():
            break
        inputs = {"iteration": iteration, **({"depth": run.depth} if run.depth > 1 else {})}
        with span(f"rlm.iteration.{iteration}", "CHAIN", inputs) as active:
            action = run.generate(iteration)
            outputs = run.execute(iteration, action)
            set_outputs(active, run.step_view(iteration, submitted=outputs is not None))
        if outputs is not None:
            if on_submitted is not None:
                on_submitted(outputs)
            return run.prediction(outputs, action.reasoning)
    return run.finish()
