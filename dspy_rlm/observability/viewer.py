"""The trajectory viewer: `dspy.inspect_history`'s counterpart for what an RLM call did.

    inspect_trajectory(result)              # a result, or an RLMError (it carries its steps)
    inspect_trajectory("tr-1a2b...")        # an MLflow trace id (the active tracking store)

Each step shows its number, time, sub-queries and error, its reasoning, its code
(highlighted) and its output cut in the middle to `max_output_chars`, as the model saw it
(outputs are kept in the trajectory up to `settings.TRAJECTORY_TEXT_CHARS`, so the count shown is
of what was kept); then the call's usage. `plain=True` prints each step as the REPL-history block the model
read (`Step.format`). From a trace, values are as long as the trace kept them
(see `set_span_value_limit`). `dspy-rlm show <trace-id>` prints the same.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.syntax import Syntax

from dspy_rlm import settings
from dspy_rlm.core.transcript import Step
from dspy_rlm.observability.tracing import unfenced
from dspy_rlm.sandbox import truncate_middle


def inspect_trajectory(source: Any, *, max_output_chars: int = settings.MAX_OUTPUT_CHARS, plain: bool = False,
                       console: Console | None = None) -> None:
    """Print the steps (code, outputs, sub-queries, times) and usage of an RLM call.

    `source`: a result of an `RLM` call, an `RLMError`, a trajectory (list of step dicts),
    or the id of an MLflow trace that holds an RLM call."""
    console = console or Console()
    trajectory, usage = _trajectory_of(source)
    for record in trajectory:
        step = Step.model_validate(record)
        if plain:
            console.print(step.format(max_output_chars), markup=False, highlight=False)
            console.print(_summary(step), markup=False, highlight=False)
        else:
            _print_step(console, step, max_output_chars)
    if not trajectory:
        console.print("(no steps)")
    if usage:
        console.print(Rule("usage") if not plain else "--- usage ---")
        console.print(_usage_line(usage), markup=False, highlight=False)


def load_trajectory(trace_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The trajectory and usage of the RLM call in an MLflow trace (of the active tracking store)."""
    import mlflow

    trace = mlflow.get_trace(trace_id, silent=True, flush=True)
    if trace is None:
        raise ValueError(f"no trace {trace_id} in {mlflow.get_tracking_uri()}; check the id "
                         "(mlflow ui lists them) and the tracking URI")
    for span in trace.data.spans:  # the RLM's own span (RLM.forward) returns the whole result
        outputs = span.outputs
        if isinstance(outputs, dict) and isinstance(outputs.get("trajectory"), list):
            steps = [record for record in outputs["trajectory"] if isinstance(record, dict)]
            return steps, outputs.get("usage") if isinstance(outputs.get("usage"), dict) else {}
    steps = [_from_iteration_span(span) for span in sorted(trace.data.spans, key=lambda s: s.start_time_ns)
             if span.name.startswith("rlm.iteration.") and isinstance(span.outputs, dict)]
    if not steps:
        raise ValueError(f"trace {trace_id} holds no RLM call (no RLM.forward or rlm.iteration spans)")
    return steps, {}


def _trajectory_of(source: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if isinstance(source, str):
        return load_trajectory(source)
    if isinstance(source, list):
        return source, {}
    trajectory = getattr(source, "trajectory", None)
    if not isinstance(trajectory, list):
        raise TypeError(f"inspect_trajectory takes an RLM result, an RLMError, a trajectory or a trace id, "
                        f"got {type(source).__name__}")
    usage = getattr(source, "usage", None)
    return trajectory, usage if isinstance(usage, dict) else {}


def _from_iteration_span(span: Any) -> dict[str, Any]:
    """A step rebuilt from its iteration span (an RLM traced without DSPy's autolog)."""
    outputs = span.outputs
    return {"iteration": int(span.name.rsplit(".", 1)[-1]), "reasoning": outputs.get("reasoning") or "",
            "code": unfenced(outputs.get("code") or ""), "output": unfenced(outputs.get("output") or ""),
            "error": outputs.get("error"), "seconds": outputs.get("seconds") or 0.0}


def _print_step(console: Console, step: Step, max_output_chars: int) -> None:
    console.print(Rule(f"[bold]Step {step.iteration}[/bold] · {escape(_summary(step))}", align="left"))
    if step.reasoning:
        console.print(step.reasoning, markup=False, highlight=False)
    if step.code:
        console.print(Syntax(step.code, "python", line_numbers=True, word_wrap=True))
    style = "red" if step.error else "green"
    console.print(f"[{style}]output[/{style}] ({len(step.output):,} chars kept)")
    console.print(truncate_middle(step.output, max_output_chars) or "(none)", markup=False, highlight=False)


def _summary(step: Step) -> str:
    parts = [f"{step.seconds:g} s"]
    if step.sub_queries:
        count = len(step.sub_queries)
        seconds = sum(q.seconds for q in step.sub_queries)
        failed = sum(1 for q in step.sub_queries if q.error)
        parts.append(f"{count} sub-quer{'y' if count == 1 else 'ies'} ({seconds:g} s"
                     + (f", {failed} failed)" if failed else ")"))
    if step.error:
        parts.append(f"error: {step.error}")
    return " · ".join(parts)


def _usage_line(usage: dict[str, Any]) -> str:
    parts = [f"root: {usage.get('root_calls', 0)} calls, {_tokens(usage.get('root_tokens'))} tokens",
             f"sub: {usage.get('sub_calls', 0)} calls, {_tokens(usage.get('sub_tokens'))} tokens",
             f"total: {usage.get('total_tokens', 0):,} tokens"]
    if usage.get("cost_usd") is not None:
        parts.append(f"~${usage['cost_usd']:g}")
    if usage.get("seconds") is not None:
        parts.append(f"{usage['seconds']:g} s ({usage.get('sandbox_seconds', 0):g} s in the sandbox)")
    return " · ".join(parts)


def _tokens(counts: Any) -> str:
    return f"{counts.get('total_tokens', 0):,}" if isinstance(counts, dict) else "0"
