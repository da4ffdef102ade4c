"""Batch inference and evaluation on a local Spark session (local[2]) with the simulated model."""

from __future__ import annotations

import os

import mlflow
import pytest

from dspy_rlm.cli.main import main
from dspy_rlm.serving.batch import read_table, run_batch, write_table
from dspy_rlm.serving.spark import run_on_spark
from tests.scale.conftest import LONG_ROW, MISSING_ROW, SETTINGS
from tests.scale.test_batch import check_rows

pytestmark = pytest.mark.slow


def plain(frame) -> list[dict]:
    """Rows as dicts of plain values, a missing value as None (Spark gives NaN where pandas kept None)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def test_spark_answers_every_row_or_records_its_error_and_agrees_with_the_batch_in_process(
        spark, niah_model, niah_table):
    progress = []
    result = run_on_spark(spark, niah_model, niah_table, SETTINGS, progress=lambda done, total: progress.append(done))
    check_rows(result, niah_table)
    in_process = run_batch(niah_model, niah_table, SETTINGS)
    columns = ["answer", "error", "sandbox_error", "iterations"]
    assert plain(result[columns]) == plain(in_process[columns])  # the same deterministic rows, wherever they ran
    answered = result["error"] == ""  # (where a limit stops concurrent sub-queries depends on timing)
    assert plain(result[answered][["calls", "tokens"]]) == plain(in_process[answered][["calls", "tokens"]])
    # Each Python worker loaded the sandbox factory once, on its first row, and reused it after.
    workers = result.groupby("worker")["warm"]
    assert os.getpid() not in set(result["worker"]) and 1 <= len(workers) <= 2
    assert all(count == 1 for count in workers.apply(lambda warm: int((~warm).sum())))
    assert progress and progress == sorted(progress)


def test_the_command_evaluates_a_split_on_spark_and_logs_the_score(spark, niah_model, niah_table, tmp_path, capsys):
    split = niah_table.iloc[[*range(6), MISSING_ROW, LONG_ROW]]  # the big run is the test above: a few rows here
    source, answers = tmp_path / "split.parquet", tmp_path / "scored.parquet"
    write_table(split, source)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["batch", "--model", niah_model, "--input", str(source), "--output", str(answers), "--spark", "local[2]",
                 "--metric", "niah", "--max-tokens", str(SETTINGS.max_tokens), "--tracking-uri", store])
    assert code == 0, capsys.readouterr().err
    scored = read_table(answers)
    assert len(scored) == len(split) and list(scored["score"]) == [1.0] * 6 + [0.0, 0.0]  # the crafted rows score 0
    mlflow.set_tracking_uri(store)
    run = mlflow.search_runs(experiment_names=["dspy-rlm-batch"], output_format="list")[0]
    metrics = run.data.metrics
    assert metrics["rows"] == len(split) and metrics["errors"] == 1 and metrics["rows_with_sandbox_errors"] == 1
    assert metrics["score_mean"] == pytest.approx(6 / 8, abs=1e-5)
    assert metrics["score_mean_answered"] == pytest.approx(6 / 7, abs=1e-5)
    assert run.data.params["spark"] == "local[2]" and run.data.params["max_tokens"] == str(SETTINGS.max_tokens)
    assert spark.sparkContext._jsc is not None  # the command left the running session alone
