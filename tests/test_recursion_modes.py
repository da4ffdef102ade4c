"""Recursion across the module's modes: acall, an isolated worker process, MLflow traces, the live display."""

from __future__ import annotations

import io

import dspy
import pytest
from rich.console import Console

from dspy_rlm import RLM, RLMProgress
from tests.mlflow_helpers import ancestors, mlflow_store, spans_named, traces, tree
from tests.test_recursion import call, echo_sub, tree_lm

ROOT = ["a = rlm_query_batched(['one', 'two'], contexts=[3, 4])\nprint(a)", "SUBMIT(answer=str(a))"]
CHILD = ["x = context * 10\nprint(x)", "SUBMIT(answer=str(x))"]


async def test_acall_runs_children_too():
    with dspy.context(lm=tree_lm(ROOT, CHILD)):
        result = await RLM("context -> answer", max_depth=2).acall(context="c")
    assert result.answer == "['30', '40']"


def test_children_run_in_worker_processes_with_isolate_process():
    result = call(tree_lm(ROOT, CHILD), isolate_process=True)
    assert result.answer == "['30', '40']" and len(result.trajectory[0]["children"]) == 2


def test_child_runs_nest_in_the_trace_under_the_step_that_started_them(tmp_path):
    with mlflow_store(tmp_path, "recursion-trace"):
        call(tree_lm(ROOT, CHILD))
        [trace] = traces()
    children = spans_named(trace, "rlm.child")
    assert len(children) == 2, tree(trace)
    for child in children:
        assert ancestors(trace, child)[:3] == ["rlm_query", "rlm.execute_code", "rlm.iteration.1"], tree(trace)
    child_steps = [s for s in spans_named(trace, "rlm.iteration.1") if "rlm.child" in ancestors(trace, s)]
    assert len(child_steps) == 2 and all(s.inputs["depth"] == 2 for s in child_steps)


def test_the_live_display_shows_depth_and_counts_child_runs():
    out = io.StringIO()
    progress = RLMProgress(console=Console(file=out, width=120, force_terminal=False))
    with progress.live():
        call(tree_lm(ROOT, CHILD))
    text = out.getvalue()
    assert "(depth 2)" in text and progress.children == 2 and progress.steps == 6
