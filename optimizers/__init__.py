"""Compile RLM programs (or your own DSPy programs) with DSPy optimizers, tracked in MLflow.

    from dspy_rlm.optimizers import optimize, optimize_program
    result = optimize("niah", "bootstrap", model="sim")         # a task family, the simulated model
    result.baseline_score, result.compiled_score                 # test-split scores (percent)
    result = optimize_program(program, trainset, devset, metric, "gepa", reflection_lm=lm)   # your own

For plain `dspy.GEPA` on an `RLM`, pass `component_selector=SkipExtractSelector()`: `extract` runs
only when the iterations run out, so GEPA's round-robin would waste turns on it.

Command line: `dspy-rlm optimize --program niah --optimizer gepa --reflection-model sim`.
The package imports nothing heavy until `optimize` is used (the CLI builds its parser from it).
"""

from typing import Any

__all__ = ["OPTIMIZERS", "OptimizeResult", "SkipExtractSelector", "Stabilize", "float_metric", "optimize",
           "optimize_program"]

_HOMES = {
    "optimize": "compile", "OptimizeResult": "compile", "optimize_program": "program",
    "OPTIMIZERS": "settings", "SkipExtractSelector": "settings", "float_metric": "settings", "Stabilize": "stabilize",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dspy_rlm.optimizers' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"dspy_rlm.optimizers.{home}"), name)
