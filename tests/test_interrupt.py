"""Ctrl-C (SIGINT) during `dspy-rlm optimize` and `dspy-rlm demo`: exit 130 with one line, the MLflow
run KILLED, nothing half-written, and never a crash (before: a 75-line traceback, then SIGSEGV)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

TINY_ARGS = ["--size", "train=3", "--size", "dev=3", "--size", "test=3", "--size", "context=2048"]


def _start(argv: list[str], folder: Path) -> subprocess.Popen:
    # SIGINT back to its default: a child of a background job would otherwise inherit "ignored".
    return subprocess.Popen([sys.executable, "-m", "dspy_rlm.cli.main", *argv], cwd=folder, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_run(uri: str, started: subprocess.Popen, is_busy) -> str:
    """The id of the command's top-level run, once `is_busy(runs)` says it is well under way."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert started.poll() is None, started.communicate()[1][-3000:]
        try:
            runs = MlflowClient(uri).search_runs([e.experiment_id for e in MlflowClient(uri).search_experiments()])
        except Exception:  # the store is still being created
            runs = []
        if runs and is_busy(runs):
            return next(r.info.run_id for r in runs if "mlflow.parentRunId" not in r.data.tags)
        time.sleep(0.2)
    raise AssertionError("the command never got under way")


def _interrupt(started: subprocess.Popen) -> tuple[int, str, float]:
    started.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = started.communicate(timeout=60)
    return started.returncode, err, time.monotonic() - sent


def _check_clean_exit(code: int, err: str, seconds: float, command: str) -> None:
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and "Segmentation" not in err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith(f"dspy-rlm {command}: interrupted (Ctrl-C); MLflow run") and "KILLED" in last
    assert seconds < 20  # generous: it leaves within a few seconds


@pytest.mark.slow
def test_ctrl_c_during_a_gepa_compile_exits_130_with_the_run_killed_and_nothing_saved(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = tmp_path / "out"
    started = _start(["optimize", "--program", "oolong", "--optimizer", "gepa", "--reflection-model", "sim",
                      "--set", "max_metric_calls=100000", "--tracking-uri", uri, "--out", str(out), *TINY_ARGS],
                     tmp_path)
    run_id = _wait_for_run(uri, started, lambda runs: any(r.info.run_name.startswith("eval") for r in runs))
    code, err, seconds = _interrupt(started)
    _check_clean_exit(code, err, seconds, "optimize")
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"
    assert not out.exists() or not list(out.iterdir())  # no compiled program, no temporary file


@pytest.mark.slow
def test_ctrl_c_during_the_demo_exits_130_with_the_run_killed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    started = _start(["demo", "--family", "niah", "--size", "8192", "--latency", "0.5", "--tracking-uri", uri],
                     tmp_path)
    run_id = _wait_for_run(uri, started, lambda runs: True)
    time.sleep(1.5)  # into the RLM call
    code, err, seconds = _interrupt(started)
    _check_clean_exit(code, err, seconds, "demo")
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"
