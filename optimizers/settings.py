"""Optimizer settings that fit a multi-step RLM module.

An RLM calls `generate_code` once per iteration, `sub_query` once per
sub-model call and `extract` only when the iterations run out. So:

- no raw labelled rows as demos (`max_labeled_demos=0`): a training row
  (`context, query -> answer`) does not fit `generate_code`'s fields;
- bootstrapped demos only from runs the metric scores as fully right
  (`metric_threshold=1.0`), and the metric given to bootstrapping returns a
  float (a `dspy.Prediction` is always truthy);
- four bootstrapped demos rather than two: bootstrapping keeps one random
  iteration per training run (often the first look or the final SUBMIT,
  which show no strategy), so a few more demos are needed for the working
  steps to be among them;
- GEPA with a reflection LM, per-predictor feedback from the metric, and a
  component selector that never spends an iteration on `extract`.

Budgets are small by default (these runs are meant for small splits); pass
`overrides` to change any setting. Every setting is logged as a run param.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import dspy

OPTIMIZERS = ("bootstrap", "mipro", "gepa", "simba", "stabilize")
NEEDS_REFLECTION_LM = ("gepa",)


@dataclass
class OptimizerPlan:
    """A configured optimizer and how to call its `compile`."""

    name: str
    optimizer: Any
    settings: dict[str, Any]
    compile_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def metric_budget(self) -> int | None:
        """How many metric calls compiling makes, when the optimizer fixes it (GEPA's `max_metric_calls`)."""
        budget = self.settings.get("max_metric_calls") if self.name == "gepa" else None
        return budget if isinstance(budget, int) and not isinstance(budget, bool) else None


class SkipExtractSelector:
    """A GEPA component selector: round-robin over the predictors, skipping `extract`.

    `extract` runs only when an RLM runs out of iterations, so it rarely has
    reflective examples; GEPA's default round-robin would waste every third
    iteration on it ("No valid reflective examples found for extract").
    """

    def __init__(self, skip: tuple[str, ...] = ("extract",)):
        self.skip = skip
        self._turns: dict[int, itertools.count] = {}
        self._lock = threading.Lock()

    def __call__(self, state: Any, trajectories: Any, subsample_scores: Any, candidate_idx: int,
                 candidate: dict[str, str]) -> list[str]:
        names = [n for n in candidate if n.rsplit(".", 1)[-1] not in self.skip] or list(candidate)
        with self._lock:
            turn = next(self._turns.setdefault(candidate_idx, itertools.count()))
        return [names[turn % len(names)]]


def float_metric(metric: Callable[..., Any]) -> Callable[..., float]:
    """The metric as a float, for optimizers that use its truth value or average it."""
    from dspy_rlm.observability.tracking import as_float

    def scored(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> float:
        return as_float(metric(gold, pred, trace))

    scored.__name__ = getattr(metric, "__name__", "metric")
    return scored


def defaults(name: str, *, train_size: int, seed: int, num_threads: int) -> dict[str, Any]:
    """The settings used when none are overridden."""
    table = {
        "bootstrap": {"max_bootstrapped_demos": 4, "max_labeled_demos": 0, "max_rounds": 1, "metric_threshold": 1.0},
        "mipro": {"auto": None, "num_candidates": 3, "num_trials": 4, "max_bootstrapped_demos": 4,
                  "max_labeled_demos": 0, "metric_threshold": 1.0, "minibatch": False, "init_temperature": 1.0,
                  "seed": seed, "num_threads": num_threads},
        "gepa": {"max_metric_calls": 150, "reflection_minibatch_size": 3, "candidate_selection_strategy": "pareto",
                 "component_selector": "skip_extract", "use_merge": False, "skip_perfect_score": True,
                 "track_stats": True, "use_mlflow": True, "seed": seed, "num_threads": num_threads},
        "simba": {"bsize": min(4, train_size), "num_candidates": 3, "max_steps": 2, "max_demos": 2,
                  "demo_input_field_maxlen": 20_000, "num_threads": num_threads, "seed": seed},
        "stabilize": {"threshold": 1.0, "tolerance": 0.0, "solver": True, "num_threads": num_threads},
    }
    return dict(table[name])


def check_overrides(name: str, overrides: dict[str, Any] | None) -> None:
    """A clear error for settings `name` does not have."""
    known = defaults(name, train_size=1, seed=0, num_threads=1)
    unknown = sorted(set(overrides or {}) - set(known))
    if unknown:
        raise ValueError(f"Unknown {name} settings {unknown}; known: {', '.join(sorted(known))}")


def build(name: str, metric: Callable[..., Any], *, trainset: list[dspy.Example], valset: list[dspy.Example],
          reflection_lm: Any = None, prompt_lm: Any = None, task_lm: Any = None, seed: int = 0,
          num_threads: int = 2, overrides: dict[str, Any] | None = None) -> OptimizerPlan:
    """Configure optimizer `name` for an RLM program; `metric` has the 5-argument GEPA signature.

    `task_lm` is the program's model (MIPROv2 needs it when no LM is configured globally)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if name in NEEDS_REFLECTION_LM and reflection_lm is None:
        raise ValueError(f"{name} needs a reflection LM (--reflection-model), the model that reads "
                         "feedback and rewrites instructions")
    check_overrides(name, overrides)
    settings = defaults(name, train_size=len(trainset), seed=seed, num_threads=num_threads)
    settings.update(overrides or {})
    lms = {"reflection": reflection_lm, "prompt": prompt_lm, "task": task_lm}
    return _BUILDERS[name](settings, metric, trainset, valset, lms)


def _bootstrap(s, metric, trainset, valset, lms) -> OptimizerPlan:
    optimizer = dspy.BootstrapFewShot(metric=float_metric(metric), **s)
    return OptimizerPlan("bootstrap", optimizer, s, {"trainset": trainset})


def _mipro(s, metric, trainset, valset, lms) -> OptimizerPlan:
    init = {k: s[k] for k in ("auto", "num_candidates", "max_bootstrapped_demos", "max_labeled_demos",
                              "metric_threshold", "init_temperature", "seed", "num_threads")}
    optimizer = dspy.MIPROv2(metric=float_metric(metric), prompt_model=lms["prompt"] or lms["task"],
                             task_model=lms["task"], verbose=False, **init)
    compile_kwargs = {"trainset": trainset, "valset": valset, "num_trials": s["num_trials"], "minibatch": s["minibatch"]}
    return OptimizerPlan("mipro", optimizer, s, compile_kwargs)


def _gepa(s, metric, trainset, valset, lms) -> OptimizerPlan:
    init = dict(s)
    if init["component_selector"] == "skip_extract":
        init["component_selector"] = SkipExtractSelector()
    optimizer = dspy.GEPA(metric=metric, reflection_lm=lms["reflection"], **init)
    return OptimizerPlan("gepa", optimizer, s, {"trainset": trainset, "valset": valset})


def _simba(s, metric, trainset, valset, lms) -> OptimizerPlan:
    init = {k: v for k, v in s.items() if k != "seed"}
    optimizer = dspy.SIMBA(metric=float_metric(metric), prompt_model=lms["prompt"], **init)
    return OptimizerPlan("simba", optimizer, s, {"trainset": trainset, "seed": s["seed"]})


def _stabilize(s, metric, trainset, valset, lms) -> OptimizerPlan:
    from dspy_rlm.optimizers.stabilize import Stabilize

    optimizer = Stabilize(metric=float_metric(metric), **s)
    return OptimizerPlan("stabilize", optimizer, s, {"trainset": trainset, "valset": valset})


_BUILDERS = {"bootstrap": _bootstrap, "mipro": _mipro, "gepa": _gepa, "simba": _simba, "stabilize": _stabilize}


def cap_demos(program: dspy.Module, max_chars: int) -> int:
    """Cut every demo field longer than `max_chars` (head and tail kept); return how many were cut.

    Bootstrapped `sub_query` demos hold whole chunks of the context, and `generate_code` demos whole
    REPL histories; uncapped, one demo from a large context would ride along in every later call.
    """
    from dspy_rlm.sandbox import truncate_middle

    cut = 0
    for _, predictor in program.named_predictors():
        for demo in predictor.demos:
            for key, value in list(demo.items()):
                if isinstance(value, str) and len(value) > max_chars:
                    demo[key] = truncate_middle(value, max_chars)
                    cut += 1
    return cut
