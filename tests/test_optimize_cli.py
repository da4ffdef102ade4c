"""`dspy-rlm optimize` for people: fails fast, never overwrites earlier output, one-line errors, quiet display."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import dspy
import pytest

from dspy_rlm.cli.main import main
from dspy_rlm.optimizers import optimize
from dspy_rlm.optimizers.settings import build

TINY = {"train": 4, "dev": 3, "test": 4, "context": 2048}
TINY_ARGS = ["--size", "train=2", "--size", "dev=2", "--size", "test=2", "--size", "context=2048"]


def test_a_model_without_an_api_key_fails_fast_and_leaves_earlier_output_alone(tmp_path, monkeypatch, capsys):
    """No key: one line naming the problem, exit 1, within seconds, and the earlier compiled program untouched."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    earlier = tmp_path / "niah-bootstrap.json"
    earlier.write_text('{"earlier": true}')
    started = time.perf_counter()
    code = main(["optimize", "--program", "niah", "--optimizer", "bootstrap", "--model", "openai/gpt-4o-mini",
                 "--tracking-uri", "", "--out", str(tmp_path), "--no-progress", *TINY_ARGS])
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith("dspy-rlm optimize: error: the root model openai/gpt-4o-mini cannot be called")
    assert "OPENAI_API_KEY" in error and error.count("\n") == 1
    assert time.perf_counter() - started < 60  # generous: it stops at the first call, before any evaluation
    assert earlier.read_text() == '{"earlier": true}' and sorted(p.name for p in tmp_path.iterdir()) == [earlier.name]


def test_each_run_gets_its_own_file_and_an_explicit_output_is_overwritten_only_with_force(tmp_path):
    first = optimize("niah", "bootstrap", tracking_uri=None, sizes=TINY, output_dir=tmp_path, progress=False)
    saved = (tmp_path / "niah-bootstrap.json").read_text()
    second = optimize("niah", "bootstrap", tracking_uri=None, sizes=TINY, output_dir=tmp_path, progress=False)
    assert first.state_path == str(tmp_path / "niah-bootstrap.json")
    assert second.state_path == str(tmp_path / "niah-bootstrap-2.json")
    assert (tmp_path / "niah-bootstrap.json").read_text() == saved
    with pytest.raises(ValueError, match="niah-bootstrap.json already exists; pass force=True"):
        optimize("niah", "bootstrap", tracking_uri=None, sizes=TINY, output=first.state_path, progress=False)
    forced = optimize("niah", "bootstrap", tracking_uri=None, sizes=TINY, output=first.state_path, force=True,
                      progress=False)
    assert forced.state_path == first.state_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["niah-bootstrap-2.json", "niah-bootstrap.json"]  # no temp files


def test_an_existing_output_without_force_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "mine.json"
    target.write_text("{}")
    code = main(["optimize", "--program", "niah", "--optimizer", "bootstrap", "--tracking-uri", "",
                 "--output", str(target), *TINY_ARGS])
    error = capsys.readouterr().err
    assert code == 2 and "mine.json already exists; pass --force" in error and error.count("\n") == 1
    assert target.read_text() == "{}"


@pytest.mark.parametrize("size", ["context=10", "context=99999999"])
def test_a_context_size_out_of_range_is_a_one_line_error(size, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["optimize", "--program", "niah", "--optimizer", "bootstrap", "--size", size])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and "from 1024 (2^10) to 8388608 (2^23) characters" in error
    assert "Traceback" not in error
    with pytest.raises(ValueError, match=r"context size .* from 1024 \(2\^10\) to 8388608"):
        optimize("niah", "bootstrap", tracking_uri=None, sizes={"context": 10})


def test_gepas_metric_call_budget_is_the_compile_phases_total():
    plan = build("gepa", lambda *a: 1.0, trainset=[], valset=[], reflection_lm=dspy.LM("openai/x"),
                 overrides={"max_metric_calls": 24})
    assert plan.metric_budget == 24
    assert build("bootstrap", lambda *a: 1.0, trainset=[], valset=[]).metric_budget is None


def test_other_libraries_are_quiet_by_default_and_verbose_brings_them_back(monkeypatch):
    from dspy_rlm.cli.console import quiet_libraries

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    gepa_log = logging.getLogger("dspy.teleprompt.gepa.gepa")
    with quiet_libraries(verbose=False):
        assert not gepa_log.isEnabledFor(logging.INFO) and not logging.getLogger("mlflow").isEnabledFor(logging.INFO)
        assert os.environ["TQDM_DISABLE"] == "1" and os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
        assert gepa_log.isEnabledFor(logging.WARNING)
    assert gepa_log.isEnabledFor(logging.INFO) and "TQDM_DISABLE" not in os.environ  # restored afterwards
    with quiet_libraries(verbose=True):
        assert gepa_log.isEnabledFor(logging.INFO) and "TQDM_DISABLE" not in os.environ


@pytest.mark.slow
def test_a_gepa_run_prints_a_screenful_not_hundreds_of_lines(tmp_path):
    """Before: about 120 lines for this run (GEPA's INFO lines with whole instructions, tqdm bars)."""
    argv = [sys.executable, "-m", "dspy_rlm.cli.main", "optimize", "--program", "oolong", "--optimizer", "gepa",
            "--reflection-model", "sim", "--set", "max_metric_calls=30", "--tracking-uri",
            f"sqlite:///{tmp_path}/m.db", "--out", str(tmp_path), *TINY_ARGS]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) < 40, "\n".join(lines[:60])
    assert not any("INFO" in line or "it/s]" in line for line in lines)
