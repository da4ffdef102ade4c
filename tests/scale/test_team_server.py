"""A team MLflow server: real PostgreSQL and `mlflow server` started by the test; demo, optimize and batch
track into it over HTTP, and their runs and traces are read back with the MLflow client."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from dspy_rlm.cli.main import main
from dspy_rlm.serving.batch import read_table, write_table

pytestmark = pytest.mark.slow


@pytest.fixture
def on_the_server(team_server):
    """The client pointed at the team server for one test; autologging off again afterwards."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(team_server.tracking_uri)
    yield team_server.tracking_uri
    mlflow.flush_trace_async_logging()
    mlflow.dspy.autolog(disable=True, silent=True)
    mlflow.set_tracking_uri(previous)


def runs_of(experiment: str) -> list:
    experiment_id = MlflowClient().get_experiment_by_name(experiment).experiment_id
    return MlflowClient().search_runs([experiment_id], order_by=["attributes.start_time ASC"])


def traces_of(experiment: str) -> list:
    mlflow.flush_trace_async_logging()
    experiment_id = MlflowClient().get_experiment_by_name(experiment).experiment_id
    return mlflow.search_traces(locations=[experiment_id], return_type="list")


def test_the_store_is_postgresql(team_server):
    assert team_server.backend_store_uri.startswith("postgresql+psycopg://mlflow@127.0.0.1:")
    assert (team_server.data / "PG_VERSION").is_file()


def test_a_demo_is_tracked_with_its_trace(on_the_server, capsys):
    assert main(["demo", "--family", "niah", "--size", "4096", "--tracking-uri", on_the_server]) == 0
    assert f"in {on_the_server}" in capsys.readouterr().out
    run = runs_of("dspy-rlm-demo")[-1]
    assert run.info.status == "FINISHED" and run.data.params["family"] == "niah"
    assert "score" in run.data.metrics
    trace = traces_of("dspy-rlm-demo")[-1]
    assert any(span.name.startswith("rlm.iteration") for span in trace.data.spans)


def test_an_optimization_and_a_batch_over_its_model_are_tracked(on_the_server, tmp_path, niah_table, capsys):
    code = main(["optimize", "--program", "niah", "--optimizer", "bootstrap", "--size", "train=2", "--size", "dev=2",
                 "--size", "test=2", "--size", "context=2048", "--tracking-uri", on_the_server, "--out", str(tmp_path),
                 "--log-model", "--no-progress", "--json"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    parent = [run for run in runs_of("dspy-rlm-optimize") if "mlflow.parentRunId" not in run.data.tags][-1]
    assert parent.info.status == "FINISHED" and "final_test_score" in parent.data.metrics
    assert traces_of("dspy-rlm-optimize"), "the optimization's evaluations leave traces"
    models = mlflow.search_logged_models(experiment_ids=[parent.info.experiment_id], output_format="list",
                                         filter_string=f"source_run_id = '{parent.info.run_id}'")
    served = [model for model in models if model.name != "dspy"]
    assert served, "--log-model logged the compiled program"

    source, answers = tmp_path / "tasks.jsonl", tmp_path / "answers.jsonl"
    write_table(niah_table.iloc[:3], source)
    code = main(["batch", "--model", served[0].model_uri, "--input", str(source), "--output", str(answers),
                 "--metric", "niah", "--tracking-uri", on_the_server])
    assert code == 0, capsys.readouterr().err
    assert len(read_table(answers)) == 3
    batch = runs_of("dspy-rlm-batch")[-1]
    assert batch.data.metrics["rows"] == 3 and "score_mean" in batch.data.metrics
    assert len(traces_of("dspy-rlm-batch")) == 3
    artifacts = [f.path for f in MlflowClient().list_artifacts(batch.info.run_id)]
    assert "eval_rows.json" in artifacts  # through the server's artifact store
