"""Run tracking helpers: the store, params without secrets, runs from worker threads, scores on traces."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import dspy
import mlflow
import pytest
from mlflow import MlflowClient

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.observability.tracking import (
    REDACTED, artifact_location, evaluate, flatten, log_examples, log_params, runs_follow_threads, usage_summary,
    use_experiment,
)
from tests.mlflow_helpers import mlflow_store, traces, tree


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with mlflow_store(tmp_path_factory.mktemp("tracking"), "tracking-tests") as uri:
        yield uri


def test_sqlite_stores_get_their_own_artifact_folder(tmp_path, store):
    assert artifact_location(f"sqlite:///{tmp_path}/a.db", "exp one") == (tmp_path / "a-artifacts" / "exp-one").as_uri()
    assert artifact_location(f"sqlite:///{tmp_path}/b.db", "exp one") != artifact_location(
        f"sqlite:///{tmp_path}/a.db", "exp one")
    assert artifact_location("http://127.0.0.1:5000", "x") is None
    experiment = mlflow.get_experiment_by_name("tracking-tests")
    assert experiment.artifact_location.endswith("mlflow-artifacts/tracking-tests")


def test_params_are_flattened_cut_to_mlflow_limits_and_never_hold_secrets():
    flat = flatten({"lm": {"model": "openai/x", "api_key": "sk-123", "headers": {"Authorization": "Bearer t"}},
                    "max_tokens": 5, "long": "y" * 7000})
    assert flat["lm.model"] == "openai/x" and flat["max_tokens"] == "5"
    assert flat["lm.api_key"] == REDACTED and flat["lm.headers.Authorization"] == REDACTED
    assert len(flat["long"]) <= 6000 and flat["long"].endswith("[truncated]")
    assert "sk-123" not in str(flat)


def test_params_and_datasets_land_in_the_run(store):
    examples = [dspy.Example(context=f"c{i}", query="q", answer=str(i)).with_inputs("context", "query") for i in range(3)]
    with mlflow.start_run() as run:
        log_params({"optimizer": {"max_bootstrapped_demos": 2, "seed": 0}}, prefix="opt.")
        log_examples(examples, "toy-train", "training")
    stored = MlflowClient().get_run(run.info.run_id)
    assert stored.data.params == {"opt.optimizer.max_bootstrapped_demos": "2", "opt.optimizer.seed": "0"}
    (dataset,) = stored.inputs.dataset_inputs
    assert dataset.dataset.name == "toy-train" and [t.value for t in dataset.tags] == ["training"]
    assert '"num_rows": 3' in dataset.dataset.profile


def test_runs_started_in_worker_threads_stay_under_the_parent(store):
    def nested(i):
        with mlflow.start_run(run_name=f"worker-{i}", nested=True) as child:
            mlflow.log_metric("x", i)
            return child.info.run_id, mlflow.active_run().info.run_id

    with mlflow.start_run(run_name="parent") as parent:
        with runs_follow_threads(), ThreadPoolExecutor(2) as pool:
            children = list(pool.map(nested, range(3)))
        orphan_thread = threading.Thread(target=lambda: children.append(("after", mlflow.active_run())))
        orphan_thread.start()
        orphan_thread.join()
    client = MlflowClient()
    for child_id, active_inside in children[:3]:
        assert child_id == active_inside
        assert client.get_run(child_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert children[3] == ("after", None)  # threads started after the block see no inherited run


def test_evaluation_runs_nested_and_each_row_score_is_attached_to_its_trace(store):
    use_experiment("tracking-eval")
    root = ScriptedLM(lambda r: {"reasoning": "r", "code": "```python\nSUBMIT(answer=context.upper())\n```"})
    devset = [dspy.Example(context=c, answer=a).with_inputs("context") for c, a in
              (("ab", "AB"), ("cd", "no"), ("ef", "EF"))]

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return float(gold.answer == pred.answer)

    with mlflow.start_run(run_name="optimization") as parent, dspy.context(lm=root):
        result = evaluate(RLM("context -> answer"), devset, metric, name="baseline_test", num_threads=2)
    assert round(result.score, 2) == 66.67
    (child,) = MlflowClient().search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert child.info.run_name == "baseline_test" and child.data.metrics["score"] == pytest.approx(66.67, abs=0.01)
    found = traces()
    assert len(found) == 3 and all(tree(t)[0] == "RLM.forward [CHAIN]" for t in found)
    scores = {}
    for trace in found:
        (assessment,) = [a for a in trace.info.assessments if a.name == "score"]
        scores[trace.data.spans[0].inputs["context"]] = assessment.value
        assert trace.info.request_metadata.get("mlflow.sourceRun") == child.info.run_id
    assert scores == {"ab": 1.0, "cd": 0.0, "ef": 1.0}


def test_usage_summary_counts_calls_and_tokens_per_model():
    data = {"a": [{"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}] * 2, "b": [{"total_tokens": 7}]}
    assert usage_summary(data) == {
        "a": {"calls": 2, "prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8},
        "b": {"calls": 1, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 7},
    }
