"""Real optimizers end to end on tiny splits with the simulated model, read back from the MLflow store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dspy
import mlflow
import pytest
from mlflow import MlflowClient

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.cli.main import main as cli
from dspy_rlm.optimizers import optimize
from dspy_rlm.optimizers.settings import SkipExtractSelector, build
from dspy_rlm.observability.tracking import use_experiment
from tests.mlflow_helpers import ancestors, mlflow_store, spans_named, traces, tree

TINY = {"train": 4, "dev": 3, "test": 4, "context": 2048}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("optimizers")
    with mlflow_store(folder, "optimizer-tests") as uri:
        yield uri, folder


@pytest.fixture(scope="module")
def bootstrap_run(store):
    uri, folder = store
    return optimize("niah", "bootstrap", "sim", tracking_uri=uri, experiment="opt-bootstrap", sizes=TINY,
                    output_dir=folder / "out", progress=False)


@pytest.fixture(scope="module")
def gepa_run(store):
    uri, folder = store
    # A valset larger than GEPA's reflection minibatch (3), so its full evaluations are logged as runs.
    return optimize("oolong", "gepa", "sim", reflection_model="sim", tracking_uri=uri, experiment="opt-gepa",
                    sizes={**TINY, "dev": 4}, output_dir=folder / "out", progress=False,
                    overrides={"max_metric_calls": 24})


def _runs(experiment: str) -> dict[str, object]:
    exp = mlflow.get_experiment_by_name(experiment)
    return {run.info.run_name: run for run in MlflowClient().search_runs([exp.experiment_id])}


def test_bad_arguments_get_clear_errors(capsys):
    with pytest.raises(ValueError, match="Unknown family 'nope'; choose one of: niah, oolong"):
        optimize("nope", "bootstrap", tracking_uri=None)
    with pytest.raises(ValueError, match="Unknown optimizer 'adam'; choose one of: bootstrap, mipro, gepa, simba"):
        optimize("niah", "adam", tracking_uri=None)
    with pytest.raises(ValueError, match="gepa needs a reflection model"):
        optimize("niah", "gepa", tracking_uri=None)
    assert cli(["optimize", "--program", "niah", "--optimizer", "gepa", "--tracking-uri", ""]) == 2
    assert "error: gepa needs a reflection model: pass --reflection-model" in capsys.readouterr().err
    assert cli(["optimize", "--program", "niah", "--optimizer", "simba", "--set", "nope=1"]) == 2
    assert "Unknown simba settings ['nope']" in capsys.readouterr().err


def test_bootstrap_run_records_settings_models_datasets_scores_usage_and_program(bootstrap_run):
    runs = _runs("opt-bootstrap")
    run = runs["niah-bootstrap"]
    params, metrics = run.data.params, run.data.metrics
    assert params["optimizer.max_labeled_demos"] == "0" and params["optimizer.max_bootstrapped_demos"] == "4"
    assert params["optimizer.metric_threshold"] == "1.0" and params["models.root"] == "sim/niah"
    assert params["sizes.train"] == "4" and params["rlm.max_iters"] == "8"
    assert metrics["baseline_test_score"] == bootstrap_run.baseline_score
    assert metrics["final_test_score"] == bootstrap_run.compiled_score
    assert metrics["usage.calls"] > 0 and metrics["usage.total_tokens"] > 0
    steps = MlflowClient().get_metric_history(run.info.run_id, "compile_metric")  # one per bootstrapping attempt
    assert len(steps) >= 1 and sorted(m.step for m in steps) == list(range(len(steps)))
    assert sorted(t.value for d in run.inputs.dataset_inputs for t in d.tags) == ["testing", "training", "validation"]
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    assert {"program", "usage.json", "best_model.json"} <= artifacts
    state = json.loads(Path(MlflowClient().download_artifacts(run.info.run_id, "program/niah-bootstrap.json")).read_text())
    assert state["generate_code"]["demos"], "bootstrapping found no demos"
    assert all(set(d) >= {"variables_info", "repl_history", "code"} and "answer" not in d
               for d in state["generate_code"]["demos"])  # traces as demos, never raw labelled rows
    for name in ("baseline_test", "compiled_test"):
        assert runs[name].data.tags["mlflow.parentRunId"] == run.info.run_id


def test_evaluation_traces_carry_scores_and_the_nested_span_tree(bootstrap_run):
    use_experiment("opt-bootstrap")
    runs = _runs("opt-bootstrap")
    evaluations = {runs[name].info.run_id for name in ("baseline_test", "compiled_test")}
    # One scored trace per evaluated row, linked to its evaluation run. A DSPy call that a thread
    # left over from an earlier test makes meanwhile is traced into the active experiment too
    # (MLflow's experiment is process-wide); it carries no score and is not counted.
    found = [t for t in traces() if [a.name for a in t.info.assessments] == ["score"]]
    assert len(found) == 2 * TINY["test"]
    assert all(t.info.request_metadata.get("mlflow.sourceRun") in evaluations for t in found)
    for trace in found:
        lines = tree(trace)
        assert lines[0] == "RLM.forward [CHAIN]" and "  rlm.iteration.1 [CHAIN]" in lines
        for span in spans_named(trace, "llm_query"):
            assert "rlm.execute_code" in ancestors(trace, span)[:2]
    scores = sorted(a.value for t in found for a in t.info.assessments)
    assert sum(scores) == pytest.approx((bootstrap_run.baseline_score + bootstrap_run.compiled_score) / 100 * TINY["test"])


def test_the_saved_state_reproduces_the_compiled_program(bootstrap_run):
    fresh = RLM("context, query -> answer", max_iters=8, max_llm_calls=24)
    fresh.load(bootstrap_run.state_path)
    assert fresh.dump_state() == bootstrap_run.program.dump_state()

    def fingerprint(request):  # the answer is a hash of the whole prompt: equal answers mean equal prompts
        digest = hashlib.sha256(request.text.encode()).hexdigest()[:16]
        return {"reasoning": "r", "code": f"```python\nSUBMIT(answer='{digest}')\n```"}

    inputs = {"context": "some text", "query": "what?"}
    answers = []
    for program in (bootstrap_run.program, fresh, RLM("context, query -> answer", max_iters=8, max_llm_calls=24)):
        with dspy.context(lm=ScriptedLM(fingerprint)):
            answers.append(program(**inputs).answer)
    assert answers[0] == answers[1] != answers[2]


def test_gepa_run_keeps_worker_thread_runs_under_it_and_logs_trial_metrics(gepa_run):
    runs = _runs("opt-gepa")
    parent = runs["oolong-gepa"]
    others = [r for name, r in runs.items() if name != "oolong-gepa"]
    assert others and all(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in others)
    # GEPA evaluates each accepted candidate on the valset in its worker threads (runs eval_full_N).
    accepted = len(gepa_run.program.detailed_results.candidates) - 1
    assert accepted >= 1, "GEPA accepted no candidate: the worker-thread runs were not exercised"
    assert sum(name.startswith("eval_full") for name in runs) == accepted
    params = parent.data.params
    assert params["optimizer.component_selector"] == "skip_extract" and params["models.reflection"] == "sim"
    history = MlflowClient().get_metric_history(parent.info.run_id, "eval_full")
    assert len(history) >= 1
    assert {"baseline_test_score", "final_test_score", "usage.calls"} <= set(parent.data.metrics)
    state = json.loads(Path(gepa_run.state_path).read_text())
    assert state["extract"]["signature"]["instructions"] == RLM("context, query -> answer").extract.signature.instructions


def test_skip_extract_selector_round_robins_over_the_other_predictors():
    selector = SkipExtractSelector()
    candidate = {"generate_code": "a", "sub_query": "b", "extract": "c"}
    picks = [selector(None, [], [], 0, candidate)[0] for _ in range(4)]
    assert picks == ["generate_code", "sub_query", "generate_code", "sub_query"]
    assert selector(None, [], [], 1, {"rlm.extract": "x", "rlm.generate_code": "y"}) == ["rlm.generate_code"]


def test_bootstrapping_gets_a_float_metric_and_gepa_gets_feedback():
    calls = []

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        calls.append(pred_name)
        return dspy.Prediction(score=0.0, feedback="wrong")

    plan = build("bootstrap", metric, trainset=[dspy.Example(q=1)], valset=[])
    assert plan.optimizer.metric(dspy.Example(q=1), dspy.Prediction()) == 0.0  # falsy: failed traces are no demos
    plan = build("gepa", metric, trainset=[], valset=[], reflection_lm=dspy.LM("openai/x"))
    assert plan.optimizer.metric_fn is metric


def test_a_run_leaves_no_empty_pending_dspy_models(bootstrap_run):
    """DSPy autolog creates a placeholder `dspy` model per compile call that never leaves Pending."""
    experiment = mlflow.get_experiment_by_name("opt-bootstrap")
    models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    assert not [m for m in models if str(m.status).endswith("PENDING")]


def test_a_served_program_imports_the_families_only_for_the_simulated_model():
    from dspy_rlm.optimizers.families import load_family

    simulated = load_family("niah", "sim", sizes={"train": 1, "dev": 1, "test": 1, "context": 2048})
    assert simulated.serving_config()["imports"] == ["dspy_rlm.programs.families"]
    real = load_family("niah", "openai/gpt-4o-mini", sizes={"train": 1, "dev": 1, "test": 1, "context": 2048})
    assert real.serving_config()["imports"] == []


def test_the_gepa_fix_for_rlms_is_exported():
    import dspy_rlm.optimizers as optimizers
    from dspy_rlm.optimizers import settings

    assert optimizers.SkipExtractSelector is settings.SkipExtractSelector
    assert {"SkipExtractSelector", "optimize_program"} <= set(optimizers.__all__)


def test_a_served_models_requirements_include_dspy_rlm_itself():
    """Without it only `--env-manager local` could serve the model (the environment would lack the package)."""
    from importlib.metadata import version

    from dspy_rlm.serving.pyfunc import _requirements

    assert f"dspy-rlm=={version('dspy-rlm')}" in _requirements()
