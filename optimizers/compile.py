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

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import dspy

from dspy_rlm.lms.names import is_simulated
from dspy_rlm.optimizers import record
from dspy_rlm.optimizers import settings as optimizer_settings
from dspy_rlm.optimizers.families import FamilySetup, load_family
from dspy_rlm.optimizers.output import check_models, choose_output, save_atomically
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
    output: str | Path | None = None,
    force: bool = False,
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
    The program is saved to `output`, or to `output_dir/<family>-<optimizer>.json` (numbered
    `-2`, `-3`, ... when taken); an existing file is overwritten only with `force`. A model that
    cannot be called (no API key, unknown name) stops the run before anything runs (`LMFailure`).
    `lm_kwargs` go to every `dspy.LM` built from a LiteLLM name (e.g. `api_base`); secrets among
    them never reach the run, its traces or its artifacts.
    """
    check_arguments(family, optimizer, reflection_model, overrides, sizes)
    if prompt_model is None and optimizer in ("mipro", "simba") and is_simulated(model):
        prompt_model = "sim"  # the simulated model's proposals come from the simulated teacher
    state_path = choose_output(output_dir, f"{family}-{optimizer}", output, force)
    setup = load_family(family, model, sub_model=sub_model, reflection_model=reflection_model,
                        prompt_model=prompt_model, sizes=sizes or {}, seed=seed, lm_kwargs=lm_kwargs)
    return run_optimization(setup, optimizer, state_path, overwrite=force, renumber=output is None,
                            tracking_uri=tracking_uri, experiment=experiment, seed=seed, num_threads=num_threads,
                            overrides=overrides, progress=progress, log_model=log_model,
                            max_demo_chars=max_demo_chars)


def run_optimization(setup: FamilySetup, optimizer: str, state_path: Path, *, overwrite: bool, renumber: bool,
                     tracking_uri: str | None, experiment: str, seed: int, num_threads: int,
                     overrides: dict[str, Any] | None, progress: bool, log_model: bool,
                     max_demo_chars: int) -> OptimizeResult:
    """The run both `optimize` and `optimize_program` make: check the models, compile, evaluate, save, track."""
    started = time.perf_counter()
    check_models({"root": setup.lm, "sub": setup.sub_lm, "reflection": setup.reflection_lm,
                  "prompt": setup.prompt_lm})
    if not tracking_uri and optimizer == "gepa":
        overrides = {"use_mlflow": False, **(overrides or {})}  # GEPA would open a run in the default store
    bar = RunProgress(progress)
    metric = bar.wrap(setup.metric)
    plan = optimizer_settings.build(optimizer, metric, trainset=setup.train, valset=setup.dev,
                                    reflection_lm=setup.reflection_lm, prompt_lm=setup.prompt_lm, task_lm=setup.lm,
                                    seed=seed, num_threads=num_threads, overrides=overrides)
    saving = {"path": state_path, "overwrite": overwrite, "renumber": renumber}
    with record.tracked(tracking_uri, experiment, f"{setup.name}-{optimizer}") as run, bar:
        if run is not None:
            record.log_inputs(setup, plan, {"seed": seed, "num_threads": num_threads, "max_demo_chars": max_demo_chars})
        scores, usage = _run(setup, plan, metric, bar, num_threads, saving, max_demo_chars)
        if run is not None:
            record.log_outputs(setup, plan, scores, usage, saving["path"], log_model)
    return OptimizeResult(
        family=setup.name, optimizer=optimizer, model=setup.model, baseline_score=scores["baseline"],
        compiled_score=scores["compiled"], state_path=str(saving["path"]), run_id=run.info.run_id if run else None,
        tracking_uri=tracking_uri, settings=plan.settings, usage=usage["totals"], sizes=setup.sizes,
        seconds=round(time.perf_counter() - started, 2), program=scores["program"],
    )


def check_arguments(family: str, optimizer: str, reflection_model: str | None,
                    overrides: dict[str, Any] | None = None, sizes: dict[str, int] | None = None) -> None:
    """Clear errors for an unknown family, optimizer or setting, a missing reflection model, a bad size."""
    from dspy_rlm.optimizers.families import family_names

    known = family_names()
    if family not in known:
        raise ValueError(f"Unknown family {family!r}; choose one of: {', '.join(known)}")
    check_optimizer(optimizer, reflection_model, overrides)
    check_sizes(sizes)


def check_optimizer(optimizer: str, reflection_model: Any, overrides: dict[str, Any] | None = None) -> None:
    """Clear errors for an unknown optimizer or setting, and a missing reflection model."""
    if optimizer not in optimizer_settings.OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; choose one of: {', '.join(optimizer_settings.OPTIMIZERS)}")
    if optimizer in optimizer_settings.NEEDS_REFLECTION_LM and not reflection_model:
        raise ValueError(f"{optimizer} needs a reflection model: pass --reflection-model (for the simulated "
                         "model, --reflection-model sim)")
    optimizer_settings.check_overrides(optimizer, overrides)


def check_sizes(sizes: dict[str, int] | None) -> None:
    """Split sizes are whole numbers from 1; the context size is within the task families' range."""
    from dspy_rlm.programs.families.base import MAX_SIZE, MIN_SIZE

    for name, value in (sizes or {}).items():
        if name not in ("train", "dev", "test", "context"):
            raise ValueError(f"Unknown size {name!r}; the sizes are train, dev, test and context")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} size must be a whole number from 1, got {value!r}")
        if name == "context" and not MIN_SIZE <= value <= MAX_SIZE:
            raise ValueError(f"context size must be from {MIN_SIZE} (2^10) to {MAX_SIZE} (2^23) characters, "
                             f"got {value}")


def _run(setup: FamilySetup, plan: optimizer_settings.OptimizerPlan, metric: Any, bar: RunProgress, num_threads: int,
         saving: dict[str, Any], max_demo_chars: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from dspy_rlm.observability.tracking import evaluate, runs_follow_threads, usage_summary

    with dspy.context(lm=setup.lm):
        with bar.phase("baseline on test", total=len(setup.test)):
            baseline = evaluate(setup.program, setup.test, metric, name="baseline_test", num_threads=num_threads)
        compiling = bar.phase(f"compile ({plan.name})", total=plan.metric_budget)
        with compiling, dspy.track_usage() as tracker, runs_follow_threads():
            compiled = plan.optimizer.compile(setup.program, **plan.compile_kwargs)
        demo_fields_cut = optimizer_settings.cap_demos(compiled, max_demo_chars)
        with bar.phase("compiled on test", total=len(setup.test)):
            final = evaluate(compiled, setup.test, metric, name="compiled_test", num_threads=num_threads)
    saving["path"] = save_atomically(compiled, saving["path"], overwrite=saving["overwrite"],
                                     renumber=saving["renumber"])
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
            if setup.sub_lm is not None:
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
