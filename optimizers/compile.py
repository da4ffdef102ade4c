"""`optimize(...)`: compile an RLM program on a task family's train split, tracked in MLflow.

One MLflow run per optimization holds: the optimizer's settings and the
model names as params; the train/dev/test splits as MLflow datasets; the
score per trial or step as metrics (`compile_metric` for every metric call
while compiling, `trial_score` per candidate, autolog's `eval_full`, GEPA's
iteration metrics); the baseline and
final test scores; usage totals; and the compiled program's JSON state as an
artifact. Evaluations of the baseline and the compiled program are nested
runs whose traces carry each row's score.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import dspy

from dspy_rlm.lms.names import is_simulated
from dspy_rlm.optimizers import settings as optimizer_settings
from dspy_rlm.optimizers.families import FamilySetup, load_family
from dspy_rlm.optimizers.progress import RunProgress


@dataclass
class OptimizeResult:
    """What one optimization produced. Scores are percentages on the test split."""

    family: str
    optimizer: str
    model: str
    baseline_score: float
    compiled_score: float
    state_path: str
    run_id: str | None
    tracking_uri: str | None
    settings: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    program: Any = field(default=None, repr=False)  # the compiled module (not part of as_dict)

    @property
    def improvement(self) -> float:
        return round(self.compiled_score - self.baseline_score, 2)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "program"}
        return {**data, "improvement": self.improvement}


def optimize(
    family: str,
    optimizer: str,
    model: str = "sim",
    *,
    sub_model: str | None = None,
    reflection_model: str | None = None,
    prompt_model: str | None = None,
    tracking_uri: str | None = "sqlite:///mlflow.db",
    experiment: str = "dspy-rlm-optimize",
    output_dir: str | Path = "optimized",
    seed: int = 0,
    num_threads: int = 2,
    sizes: dict[str, int] | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    log_model: bool = False,
    max_demo_chars: int = 20_000,
    lm_kwargs: dict[str, Any] | None = None,
) -> OptimizeResult:
    """Compile `family`'s RLM program with `optimizer` and evaluate baseline and compiled on the test split.

    `model` names the root model (`"sim"` is the simulated model for this family;
    otherwise a LiteLLM name, keys from the environment). `sizes` may set
    `train`, `dev`, `test` (example counts) and `context` (characters).
    `tracking_uri=None` turns MLflow off. Demo fields longer than `max_demo_chars`
    are cut (head and tail kept) before the compiled program is evaluated and saved.
    `lm_kwargs` go to every `dspy.LM` built from a LiteLLM name (e.g. `api_base`); secrets among
    them never reach the run, its traces or its artifacts.
    """
    check_arguments(family, optimizer, reflection_model, overrides)
    started = time.perf_counter()
    if prompt_model is None and optimizer in ("mipro", "simba") and is_simulated(model):
        prompt_model = "sim"  # the simulated model's proposals come from the simulated teacher
    setup = load_family(family, model, sub_model=sub_model, reflection_model=reflection_model,
                        prompt_model=prompt_model, sizes=sizes or {}, seed=seed, lm_kwargs=lm_kwargs)
    if not tracking_uri and optimizer == "gepa":
        overrides = {"use_mlflow": False, **(overrides or {})}  # GEPA would open a run in the default store
    bar = RunProgress(progress)
    metric = bar.wrap(setup.metric)
    plan = optimizer_settings.build(optimizer, metric, trainset=setup.train, valset=setup.dev,
                                    reflection_lm=setup.reflection_lm, prompt_lm=setup.prompt_lm, task_lm=setup.lm, seed=seed,
                                    num_threads=num_threads, overrides=overrides)
    state_path = Path(output_dir) / f"{setup.name}-{optimizer}.json"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with _tracked(tracking_uri, experiment, f"{setup.name}-{optimizer}") as run, bar:
        if run is not None:
            _log_inputs(setup, plan, {"seed": seed, "num_threads": num_threads, "max_demo_chars": max_demo_chars})
        scores, usage = _run(setup, plan, metric, bar, num_threads, state_path, max_demo_chars)
        if run is not None:
            _log_outputs(setup, plan, scores, usage, state_path, log_model)
    return OptimizeResult(
        family=setup.name, optimizer=optimizer, model=setup.model, baseline_score=scores["baseline"],
        compiled_score=scores["compiled"], state_path=str(state_path), run_id=run.info.run_id if run else None,
        tracking_uri=tracking_uri, settings=plan.settings, usage=usage["totals"], sizes=setup.sizes,
        seconds=round(time.perf_counter() - started, 2), program=scores["program"],
    )


def check_arguments(family: str, optimizer: str, reflection_model: str | None,
                    overrides: dict[str, Any] | None = None) -> None:
    """Clear errors for an unknown family, optimizer or setting, and a missing reflection model."""
    from dspy_rlm.optimizers.families import family_names

    known = family_names()
    if family not in known:
        raise ValueError(f"Unknown family {family!r}; choose one of: {', '.join(known)}")
    if optimizer not in optimizer_settings.OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; choose one of: {', '.join(optimizer_settings.OPTIMIZERS)}")
    if optimizer in optimizer_settings.NEEDS_REFLECTION_LM and not reflection_model:
        raise ValueError(f"{optimizer} needs a reflection model: pass --reflection-model (for the simulated "
                         "model, --reflection-model sim)")
    optimizer_settings.check_overrides(optimizer, overrides)


def _run(setup: FamilySetup, plan: optimizer_settings.OptimizerPlan, metric: Any, bar: RunProgress,
         num_threads: int, state_path: Path, max_demo_chars: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from dspy_rlm.observability.tracking import evaluate, runs_follow_threads, usage_summary

    with dspy.context(lm=setup.lm):
        with bar.phase("baseline on test", total=len(setup.test)):
            baseline = evaluate(setup.program, setup.test, metric, name="baseline_test", num_threads=num_threads)
        with bar.phase(f"compile ({plan.name})"), dspy.track_usage() as tracker, runs_follow_threads():
            compiled = plan.optimizer.compile(setup.program, **plan.compile_kwargs)
        demo_fields_cut = optimizer_settings.cap_demos(compiled, max_demo_chars)
        with bar.phase("compiled on test", total=len(setup.test)):
            final = evaluate(compiled, setup.test, metric, name="compiled_test", num_threads=num_threads)
    compiled.save(str(state_path))
    parts = {"compile": usage_summary(tracker.usage_data), "evaluation": _eval_usage(setup, baseline, final)}
    totals = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for part in parts.values():
        for counts in part.values():
            for key in totals:
                totals[key] += counts.get(key, 0)
    scores = {"baseline": float(baseline.score), "compiled": float(final.score), "trials": _trials(compiled),
              "demo_fields_cut": demo_fields_cut, "program": compiled,
              "compile_scores": bar.scores.get(f"compile ({plan.name})", [])}
    return scores, {**parts, "totals": totals, "metric_calls": bar.calls}


def _eval_usage(setup: FamilySetup, *results: Any) -> dict[str, dict[str, int]]:
    """Usage of the evaluations, per model, from each RLM prediction's own usage record."""
    from dspy_rlm.observability.tracking import add_usage

    total: dict[str, dict[str, int]] = {}
    for result in results:
        for _, prediction, _ in result.results:
            usage = getattr(prediction, "usage", None) or {}
            add_usage(total, {model: {**tokens, "calls": 0} for model, tokens in (usage.get("by_model") or {}).items()})
            add_usage(total, {setup.lm.model: {"calls": usage.get("root_calls", 0)}})
            add_usage(total, {setup.sub_lm.model: {"calls": usage.get("sub_calls", 0)}})
    return total


def _trials(compiled: dspy.Module) -> list[float]:
    """Per-trial scores the optimizer kept on the program (MIPROv2, SIMBA: candidate_programs; GEPA: detailed_results)."""
    trials = []
    for candidate in getattr(compiled, "candidate_programs", None) or []:
        if isinstance(candidate, dict) and isinstance(candidate.get("score"), (int, float)):
            trials.append(float(candidate["score"]))
    details = getattr(compiled, "detailed_results", None)
    if details is not None and getattr(details, "val_aggregate_scores", None):
        trials = [float(s) for s in details.val_aggregate_scores]
    return trials


def _log_series(key: str, values: list[float]) -> None:
    import mlflow
    from mlflow.entities import Metric

    run_id, now = mlflow.active_run().info.run_id, int(time.time() * 1000)
    metrics = [Metric(key, float(v), now, step) for step, v in enumerate(values)]
    for start in range(0, len(metrics), 1000):
        mlflow.MlflowClient().log_batch(run_id, metrics=metrics[start:start + 1000])


@contextlib.contextmanager
def _tracked(tracking_uri: str | None, experiment: str, run_name: str):
    if not tracking_uri:
        yield None
        return
    import mlflow

    from dspy_rlm.observability.tracking import setup_tracking

    setup_tracking(tracking_uri, experiment)
    with mlflow.start_run(run_name=run_name, nested=mlflow.active_run() is not None) as run:
        yield run


def _log_inputs(setup: FamilySetup, plan: optimizer_settings.OptimizerPlan, run_settings: dict[str, Any]) -> None:
    import mlflow

    from dspy_rlm.observability.tracking import log_examples, log_params

    mlflow.set_tags({"dspy_rlm.family": setup.name, "dspy_rlm.optimizer": plan.name,
                     "dspy_rlm.model_kind": setup.model_kind})
    log_params({"family": setup.name, "optimizer": plan.name, **run_settings, "sizes": setup.sizes,
                "models": setup.model_names, "rlm": setup.rlm_kwargs})
    log_params(plan.settings, prefix="optimizer.")
    for split, context in (("train", "training"), ("dev", "validation"), ("test", "testing")):
        log_examples(getattr(setup, split), f"{setup.name}-{split}", context)


def _log_outputs(setup: FamilySetup, plan: optimizer_settings.OptimizerPlan, scores: dict[str, Any],
                 usage: dict[str, Any], state_path: Path, log_model: bool) -> None:
    import mlflow

    mlflow.log_metrics({"baseline_test_score": scores["baseline"], "final_test_score": scores["compiled"],
                        "improvement": scores["compiled"] - scores["baseline"],
                        "metric_calls": float(usage["metric_calls"]),
                        "demo_fields_cut": float(scores["demo_fields_cut"])})
    _log_series("trial_score", scores["trials"])  # per candidate/trial, as the optimizer kept them
    _log_series("compile_metric", scores["compile_scores"])  # every metric call during compile, in order
    for key, value in usage["totals"].items():
        mlflow.log_metric(f"usage.{key}", float(value))
    mlflow.log_dict({"totals": usage["totals"], "compile": usage["compile"], "evaluation": usage["evaluation"]},
                    "usage.json")
    mlflow.log_artifact(str(state_path), artifact_path="program")
    if log_model:
        from dspy_rlm.serving.pyfunc import log_rlm_model
        from dspy_rlm.observability.tracing import clip

        example = clip(dict(setup.test[0].inputs()), 300)  # a short example: contexts are large
        log_rlm_model(state_path, input_example=example, **setup.serving_config())
