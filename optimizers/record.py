"""What an optimization run records in MLflow: its inputs (settings, models, splits) and outputs
(scores, per-trial and per-call series, usage, the compiled program, optionally a servable model)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

from dspy_rlm.optimizers import settings as optimizer_settings
from dspy_rlm.optimizers.families import FamilySetup


def log_series(key: str, values: list[float]) -> None:
    import mlflow
    from mlflow.entities import Metric

    run_id, now = mlflow.active_run().info.run_id, int(time.time() * 1000)
    metrics = [Metric(key, float(v), now, step) for step, v in enumerate(values)]
    for start in range(0, len(metrics), 1000):
        mlflow.MlflowClient().log_batch(run_id, metrics=metrics[start:start + 1000])


@contextlib.contextmanager
def tracked(tracking_uri: str | None, experiment: str, run_name: str) -> Iterator[Any]:
    """The optimization's run (None with tracking off); it ends KILLED on Ctrl-C, FAILED on an error."""
    if not tracking_uri:
        yield None
        return
    from dspy_rlm.observability.runs import tracked_run
    from dspy_rlm.observability.tracking import setup_tracking

    setup_tracking(tracking_uri, experiment)
    with tracked_run(run_name) as run:
        yield run


def log_inputs(setup: FamilySetup, plan: optimizer_settings.OptimizerPlan, run_settings: dict[str, Any]) -> None:
    import mlflow

    from dspy_rlm.observability.tracking import log_examples, log_params

    mlflow.set_tags({"dspy_rlm.family": setup.name, "dspy_rlm.optimizer": plan.name,
                     "dspy_rlm.model_kind": setup.model_kind})
    log_params({"family": setup.name, "optimizer": plan.name, **run_settings, "sizes": setup.sizes,
                "models": setup.model_names, "rlm": setup.rlm_kwargs})
    log_params(plan.settings, prefix="optimizer.")
    for split, context in (("train", "training"), ("dev", "validation"), ("test", "testing")):
        log_examples(getattr(setup, split), f"{setup.name}-{split}", context)


def log_outputs(setup: FamilySetup, plan: optimizer_settings.OptimizerPlan, scores: dict[str, Any],
                 usage: dict[str, Any], state_path: Path, log_model: bool) -> None:
    import mlflow

    mlflow.log_metrics({"baseline_test_score": scores["baseline"], "final_test_score": scores["compiled"],
                        "improvement": scores["compiled"] - scores["baseline"],
                        "metric_calls": float(usage["metric_calls"]),
                        "demo_fields_cut": float(scores["demo_fields_cut"])})
    log_series("trial_score", scores["trials"])  # per candidate/trial, as the optimizer kept them
    log_series("compile_metric", scores["compile_scores"])  # every metric call during compile, in order
    for key, value in usage["totals"].items():
        mlflow.log_metric(f"usage.{key}", float(value))
    mlflow.log_dict({"totals": usage["totals"], "compile": usage["compile"], "evaluation": usage["evaluation"]},
                    "usage.json")
    mlflow.log_artifact(str(state_path), artifact_path="program")
    from dspy_rlm.observability.tracking import log_library

    log_library(scores["program"])  # the compiled program's code library, if any, as files
    report = getattr(scores["program"], "stabilize_report", None)
    if report is not None:  # Stabilize: what it harvested, kept and rejected (and why)
        mlflow.log_metrics({"stabilize.candidates": float(len(report.decisions)),
                            "stabilize.accepted": float(len(report.accepted)),
                            "stabilize.rejected": float(len(report.rejected)),
                            "stabilize.solver": float(report.solver is not None)})
        mlflow.log_dict(report.as_dict(), "stabilize.json")
    from dspy_rlm.observability.runs import drop_placeholder_models

    drop_placeholder_models(mlflow.active_run().info.run_id)  # autolog's empty Pending `dspy` models
    if log_model:
        from dspy_rlm.serving.pyfunc import log_rlm_model
        from dspy_rlm.observability.tracing import clip

        example = clip(dict(setup.test[0].inputs()), 300)  # a short example: contexts are large
        log_rlm_model(state_path, input_example=example, **setup.serving_config())
