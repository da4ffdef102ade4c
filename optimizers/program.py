"""`optimize_program(...)`: compile your own DSPy program with the settings and MLflow tracking of
`dspy-rlm optimize` (which does the same for a task family's RLM program).

    from dspy_rlm.optimizers import optimize_program
    result = optimize_program(my_program, trainset, devset, my_metric, "gepa", lm=lm, reflection_lm=lm)
    result.baseline_score, result.compiled_score, result.state_path, result.run_id
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import dspy

from dspy_rlm.optimizers.compile import OptimizeResult, check_optimizer, run_optimization
from dspy_rlm.optimizers.families import FamilySetup
from dspy_rlm.optimizers.output import choose_output


def optimize_program(
    program: dspy.Module,
    trainset: list[dspy.Example],
    devset: list[dspy.Example],
    metric: Callable[..., Any],
    optimizer: str = "bootstrap",
    *,
    testset: list[dspy.Example] | None = None,
    lm: dspy.BaseLM | None = None,
    reflection_lm: dspy.BaseLM | None = None,
    prompt_lm: dspy.BaseLM | None = None,
    name: str | None = None,
    tracking_uri: str | None = "sqlite:///mlflow.db",
    experiment: str = "dspy-rlm-optimize",
    output_dir: str | Path = "optimized",
    output: str | Path | None = None,
    force: bool = False,
    seed: int = 0,
    num_threads: int = 2,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    max_demo_chars: int = 20_000,
) -> OptimizeResult:
    """Compile `program` on `trainset` with `optimizer` (bootstrap, mipro, gepa or simba; settings
    from `dspy_rlm.optimizers.settings`, changed with `overrides`), and score it before and after
    on `testset` (default: `devset`, which is also the optimizers' validation set).

    `metric(gold, pred, trace=None, ...)` may take 2 to 5 arguments and return a number, a bool or
    `dspy.Prediction(score=..., feedback=...)` (GEPA reads the feedback). `lm` is the program's model
    (default: the configured `dspy.settings.lm`); GEPA needs `reflection_lm`. Everything else is as
    in `optimize`: one MLflow run (`name` names it, default the program's class), the JSON state saved
    without overwriting earlier output, a model that cannot be called stopping the run at once.
    """
    check_optimizer(optimizer, reflection_lm, overrides)
    lm = lm or dspy.settings.lm
    if lm is None:
        raise ValueError("No model for the program: pass lm=..., or dspy.configure(lm=...) first")
    if not trainset or not devset:
        raise ValueError("optimize_program needs a non-empty trainset and devset")
    name = name or type(program).__name__.lower()
    testset = list(testset) if testset is not None else list(devset)
    state_path = choose_output(output_dir, f"{name}-{optimizer}", output, force)
    model = getattr(lm, "model", type(lm).__name__)
    setup = FamilySetup(
        name=name, model=model, signature=None, train=list(trainset), dev=list(devset), test=testset,
        metric=accepting_five(metric), lm=lm, sub_lm=None, reflection_lm=reflection_lm, prompt_lm=prompt_lm,
        program=program, sizes={"train": len(trainset), "dev": len(devset), "test": len(testset)},
        model_names={"root": model, "sub": None, "reflection": getattr(reflection_lm, "model", None),
                     "prompt": getattr(prompt_lm, "model", None)},
    )
    return run_optimization(setup, optimizer, state_path, overwrite=force, renumber=output is None,
                            tracking_uri=tracking_uri, experiment=experiment, seed=seed, num_threads=num_threads,
                            overrides=overrides, progress=progress, log_model=False, max_demo_chars=max_demo_chars)


def accepting_five(metric: Callable[..., Any]) -> Callable[..., Any]:
    """`metric` callable as `(gold, pred, trace, pred_name, pred_trace)`, however few of them it takes."""
    try:
        parameters = list(inspect.signature(metric).parameters.values())
    except (TypeError, ValueError):
        return metric
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return metric
    count = sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for p in parameters)
    if count >= 5:
        return metric

    def adapted(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
        return metric(*(gold, pred, trace, pred_name, pred_trace)[:count])

    adapted.__name__ = getattr(metric, "__name__", "metric")
    return adapted
