"""Stabilize on task families with the simulated model (every figure here is simulated)."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm.optimizers.families import load_family
from dspy_rlm.optimizers.passes import run_pass
from dspy_rlm.optimizers.stabilize import Stabilize

SIZES = {"train": 4, "dev": 4, "test": 4, "context": 4096}


def _stabilized(family: str):
    setup = load_family(family, "sim", sizes=SIZES, seed=0)
    with dspy.context(lm=setup.lm):
        compiled = Stabilize(metric=setup.metric, program_name=family).compile(setup.program, trainset=setup.train,
                                                                               valset=setup.dev)
        before = run_pass(setup.program, setup.test, setup.metric, "test")
        after = run_pass(compiled, setup.test, setup.metric, "test")
    return compiled, before, after


@pytest.mark.parametrize("family, function", [("niah", "find_magic_number"),
                                              ("codeqa", "check_repository_statements")])
def test_a_harvested_solver_answers_held_out_tasks_with_no_root_model_call(family, function):
    compiled, before, after = _stabilized(family)
    report = compiled.stabilize_report
    assert report.accepted == [function] and report.solver == function
    assert report.rejected["make_chunks"].startswith("not self-contained: reads units")
    assert after.score >= before.score
    assert before.per_task("root_calls") >= 3 and after.per_task("root_calls") == 0
    assert all(run.solver_used for run in after.runs)
    assert compiled.library.functions[function].provenance.program == family


def test_on_oolong_no_function_solves_the_task_so_the_loop_still_runs():
    compiled, before, after = _stabilized("oolong")
    report = compiled.stabilize_report
    assert report.solver is None and "pick" in report.accepted
    assert after.score == before.score and after.per_task("root_calls") == before.per_task("root_calls")


@pytest.mark.slow
def test_optimize_with_stabilize_is_tracked_in_mlflow_with_the_library_as_an_artifact(tmp_path):
    import mlflow

    from dspy_rlm.cli.main import main

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    status = main(["optimize", "--program", "niah", "--optimizer", "stabilize", "--tracking-uri", uri,
                   "--out", str(tmp_path / "optimized"), "--no-progress", *(f"--size={k}={v}" for k, v in SIZES.items())])
    assert status == 0
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(search_all_experiments=True, filter_string="tags.mlflow.runName = 'niah-stabilize'").iloc[0]
    assert run["metrics.stabilize.accepted"] == 1 and run["metrics.stabilize.solver"] == 1
    assert run["metrics.stabilize.rejected"] >= 1
    files = [a.path for a in mlflow.MlflowClient().list_artifacts(run.run_id, "library")]
    assert files == ["library/find_magic_number.py", "library/solve.py", "library/tests"]
    assert main(["library", "test", "--library", str(tmp_path / "optimized" / "niah-stabilize.json")]) == 0
