"""Batch inference in process, and `dspy-rlm batch` end to end on jsonl, csv and parquet (simulated model)."""

from __future__ import annotations

import json
import os
import sys

import mlflow
import pandas as pd
import pytest

from dspy_rlm.cli.main import main
from dspy_rlm.serving.batch import read_table, run_batch, write_table
from dspy_rlm.serving.rows import BatchSettings, record_columns
from tests.scale.conftest import LONG_ROW, MISSING_ROW, ROW_TOKEN_LIMIT, ROWS, SETTINGS


def check_rows(result: pd.DataFrame, table: pd.DataFrame) -> None:
    """Every row is there, in order, and is right or carries its error (the specification of a batch)."""
    assert len(result) == len(table)
    assert list(result["input_answer"]) == list(table["answer"])  # the gold column, renamed beside the output
    ordinary = result.iloc[:ROWS]
    assert list(ordinary["answer"]) == list(table["answer"].iloc[:ROWS])
    assert (ordinary["error"] == "").all() and (ordinary["step_errors"] == 0).all()
    assert (ordinary["calls"] == ordinary["root_calls"] + ordinary["sub_calls"]).all()
    assert (ordinary["tokens"] > 0).all() and (ordinary["seconds"] > 0).all()

    missing = result.iloc[MISSING_ROW]  # its code raised in the sandbox; the model gave up with a shrug
    assert missing["sandbox_error"].startswith("TypeError") and missing["step_errors"] >= 1
    assert missing["answer"] != table["answer"].iloc[MISSING_ROW]

    long = result.iloc[LONG_ROW]  # the per-row token limit: its error and the tokens it spent
    assert long["error"].startswith("LimitExceeded: the call reached its tokens limit")
    assert long["tokens"] >= ROW_TOKEN_LIMIT and long["calls"] > 0


def test_a_batch_in_process_answers_every_row_or_records_its_error(niah_model, niah_table):
    seen = []
    result = run_batch(niah_model, niah_table, SETTINGS, progress=lambda done, total: seen.append((done, total)))
    check_rows(result, niah_table)
    assert list(result.columns) == [*(f"input_{c}" if c == "answer" else c for c in niah_table.columns),
                                    *record_columns(["answer"])]
    assert set(result["worker"]) == {os.getpid()}
    assert seen[-1] == (len(niah_table), len(niah_table)) and len(seen) == len(niah_table)


def test_the_settings_of_a_job_reach_every_row(niah_model, niah_table):
    one_step = run_batch(niah_model, niah_table.iloc[:3], BatchSettings(max_iters=1))
    assert list(one_step["iterations"]) == [1, 1, 1]
    assert all(error.startswith("LimitExceeded: the call reached its iterations limit") for error in one_step["error"])
    with pytest.raises(ValueError, match="max_iters must be a number of 0 or more"):
        BatchSettings(max_iters=-1)
    with pytest.raises(ValueError, match="on_limit must be"):
        BatchSettings(on_limit="ignore")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_the_command_answers_and_scores_a_file_and_tracks_the_run(niah_model, niah_table, tmp_path, suffix, capsys):
    source, answers = tmp_path / f"tasks{suffix}", tmp_path / f"answers{suffix}"
    write_table(niah_table.iloc[:2], source)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["batch", "--model", niah_model, "--input", str(source), "--output", str(answers),
                 "--metric", "niah", "--tracking-uri", store, "--max-concurrency", "8"])
    assert code == 0, capsys.readouterr().err
    written = read_table(answers)
    assert [str(a) for a in written["answer"]] == list(niah_table["answer"].iloc[:2])
    assert [float(score) for score in written["score"]] == [1.0] * 2  # csv reads back text
    out = capsys.readouterr().out
    assert "score_mean" in out and "rows_per_second" in out
    try:
        mlflow.set_tracking_uri(store)
        run = mlflow.search_runs(experiment_names=["dspy-rlm-batch"], output_format="list")[0]
        assert run.data.metrics["score_mean"] == 1.0 and run.data.metrics["rows"] == 2
        assert run.data.params["max_concurrency"] == "8" and run.data.params["spark"] == "in process"
        table = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/eval_rows.json"))
        assert len(table["data"]) == 2
        mlflow.flush_trace_async_logging()
        traces = mlflow.search_traces(locations=[run.info.experiment_id], return_type="list")
        assert len(traces) == 2  # one per row, each call traced in this process
    finally:
        mlflow.dspy.autolog(disable=True, silent=True)


def test_bad_files_and_missing_columns_are_named(niah_model, niah_table, tmp_path, capsys):
    assert main(["batch", "--model", niah_model, "--input", str(tmp_path / "x.xlsx"), "--output", str(tmp_path / "o.csv"),
                 "--tracking-uri", ""]) == 2
    assert "use .parquet, .jsonl or .csv" in capsys.readouterr().err
    assert main(["batch", "--model", niah_model, "--input", str(tmp_path / "none.csv"),
                 "--output", str(tmp_path / "o.csv"), "--tracking-uri", ""]) == 2
    assert "no input file" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"the input table has no column 'query' \(an input of the program\)"):
        run_batch(niah_model, niah_table[["context"]].iloc[:1], SETTINGS)


def test_without_the_extras_the_errors_name_them(monkeypatch, tmp_path, niah_model, capsys):
    from dspy_rlm.observability.team import require_driver
    from dspy_rlm.serving.spark import require_pyspark

    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"pip install 'dspy-rlm\[spark\]'"):
        require_pyspark()
    with pytest.raises(ImportError, match=r"pip install 'dspy-rlm\[team\]'"):
        require_driver()
    source = tmp_path / "t.jsonl"
    source.write_text('{"context": "x", "query": "y"}\n')
    code = main(["batch", "--model", niah_model, "--input", str(source), "--output", str(tmp_path / "o.jsonl"),
                 "--spark", "local[1]", "--tracking-uri", ""])
    assert code == 2 and "pip install 'dspy-rlm[spark]'" in capsys.readouterr().err


def test_a_rows_error_is_scrubbed_of_keys_before_it_reaches_files_or_mlflow():
    from dspy_rlm.serving.rows import answer_row

    def leaky(**inputs):
        raise RuntimeError("401 Unauthorized: Bearer sk-abcdefghijklmnopqrstuvwxyz")

    record = answer_row(leaky, {"context": "c", "query": "q"}, ["context", "query"], ["answer"])
    assert record["error"].startswith("RuntimeError: 401") and "sk-abcdefghij" not in record["error"]
