"""The main job: one RLM call end to end on a task family, at a few MB of context.

By default the root model and the sub-model are the simulated model
(`dspy_rlm.lms.simulated.lm.SimulatedLM`) with the family's world: the root model
writes real code that runs in the sandbox, and the sub-model answers the
sub-queries it makes. **Figures from it are simulated-model figures**: they
measure the pipeline, not a real model's ability. `model="openai/gpt-4o-mini"`
(any LiteLLM name, keys from the environment) runs the same job on a real one.
"""

from __future__ import annotations

import re
import time
from typing import Any

import dspy
from rich.console import Console

from dspy_rlm import RLM, settings
from dspy_rlm.observability.progress import RLMProgress
from dspy_rlm.observability.runs import BackgroundTracking, job_run
from dspy_rlm.lms.simulated.lm import SIMULATED_LABEL, SimulatedLM
from dspy_rlm.lms.simulated.strategies import strategy_probabilities
from dspy_rlm.observability.tracing import clip
from dspy_rlm.programs.families import get_family
from dspy_rlm.programs.families.base import check_size
from dspy_rlm.programs.families.cache import cached_task

DEFAULT_FAMILY = "oolong"
DEFAULT_SIZE = 4_000_000


def run_demo(
    family: str = DEFAULT_FAMILY,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    *,
    model: str | None = None,
    sub_model: str | None = None,
    latency: float = 0.0,
    hint: bool = True,
    max_depth: int = 1,
    tracking_uri: str | None = settings.TRACKING_URI,
    console: Console | None = None,
) -> dict[str, Any]:
    """Generate one task, run the RLM on it with a progress display, score it; return the figures.

    `hint` puts the family's one-line advice in the task instructions (an example of a tuned
    prompt); without it the RLM runs the library's bare prompt.
    """
    console = console or Console()
    task_family = get_family(family)
    check_size(size)
    simulated = model is None
    lm, sub_lm = _models(task_family, model, sub_model, seed, latency)
    # MLflow (its import and the store) is prepared on a thread while the task is generated.
    tracking = BackgroundTracking(tracking_uri, experiment="dspy-rlm-demo") if tracking_uri else None
    started = time.perf_counter()
    task = cached_task(task_family, size, seed)
    generated = time.perf_counter() - started
    signature = dspy.ensure_signature(task_family.signature)
    if hint:
        signature = signature.with_instructions(task_family.advice())
    # Child runs spend the call's budget too: a tree gets more calls, and each child a share of them.
    rlm = RLM(signature, max_iters=10, max_llm_calls=50 if max_depth == 1 else 300, sub_lm=sub_lm,
              max_depth=max_depth, max_child_llm_calls=20)
    kind = SIMULATED_LABEL if simulated else f"language model {model}"
    console.print(f"[bold]{family}[/bold]: {_chars(task.context):,} characters, seed {seed}; model: {kind}")
    console.print(f"question: {clip(task.query, 300)}")
    if simulated:
        mix = strategy_probabilities(rlm.generate_code.signature.instructions)
        console.print("simulated strategy mix for this prompt: " + ", ".join(f"{k} {v:.0%}" for k, v in mix.items()))
    params = {"family": family, "context_chars": _chars(task.context), "seed": seed, "hint": hint,
              "root_model": lm.model, "sub_model": sub_lm.model, "latency": latency, "max_depth": max_depth}
    with job_run(tracking, f"demo-{family}", params, kind, console) as log_metrics:
        progress = RLMProgress(console)
        started = time.perf_counter()
        with progress.live(), dspy.context(lm=lm):  # live() adds the display to autolog's callback
            prediction = rlm(context=task.context, query=task.query)
        seconds = time.perf_counter() - started
        figures = _figures(task_family, task, prediction, kind, simulated, generated, seconds)
        log_metrics({k: figures[k] for k in ("score", "iterations", "sub_queries", "total_tokens", "run_seconds")})
    return figures


def _figures(family: Any, task: Any, prediction: dspy.Prediction, kind: str, simulated: bool, generated: float,
             seconds: float) -> dict[str, Any]:
    usage = prediction.usage
    return {
        "model": kind,
        "family": family.name,
        "context_chars": _chars(task.context),
        "answer": clip(str(prediction.answer), 300),
        "expected": clip(task.answer, 300),
        "score": round(float(family.metric(task.example(), prediction)), 4),
        "strategy": _strategy(prediction.trajectory) if simulated else "n/a",
        "iterations": len(prediction.trajectory),
        "sub_queries": usage["sub_calls"],
        "root_tokens": usage["root_tokens"],
        "sub_tokens": usage["sub_tokens"],
        "total_tokens": usage["total_tokens"],
        "task_generation_seconds": round(generated, 2),  # making the task, before the RLM call
        "run_seconds": round(seconds, 2),  # the RLM call: model calls and sandbox steps
    }


def _models(family: Any, model: str | None, sub_model: str | None, seed: int, latency: float) -> tuple[Any, Any]:
    if model is None:
        if sub_model is not None:
            raise ValueError("--sub-model needs --model (the simulated model is both root and sub-model)")
        simulated = SimulatedLM(family.world(), seed=seed, latency=latency)
        return simulated, simulated
    root = dspy.LM(model)
    return root, dspy.LM(sub_model) if sub_model else root


def _strategy(trajectory: list[dict[str, Any]]) -> str:
    tags = [m.group(1) for step in trajectory if (m := re.match(r"# sim: work (\w+)", step.get("code", "")))]
    return " -> ".join(tags) or "none"


def _chars(context: str | list[str]) -> int:
    return len(context) if isinstance(context, str) else sum(len(doc) for doc in context)
