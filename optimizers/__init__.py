"""Compile RLM programs on task families' metric datasets with DSPy optimizers, tracked in MLflow.

    from dspy_rlm.optimizers import optimize
    result = optimize("niah", "bootstrap", model="sim")        # the simulated model
    result.baseline_score, result.compiled_score                 # test-split scores (percent)

Command line: `dspy-rlm optimize --program niah --optimizer gepa --reflection-model sim`.
The package imports nothing heavy until `optimize` is used (the CLI builds its parser from it).
"""

from typing import Any

__all__ = ["OPTIMIZERS", "OptimizeResult", "optimize"]


def __getattr__(name: str) -> Any:
    if name in ("optimize", "OptimizeResult"):
        from dspy_rlm.optimizers import compile as _compile

        return getattr(_compile, name)
    if name == "OPTIMIZERS":
        from dspy_rlm.optimizers.settings import OPTIMIZERS

        return OPTIMIZERS
    raise AttributeError(f"module 'dspy_rlm.optimizers' has no attribute {name!r}")
