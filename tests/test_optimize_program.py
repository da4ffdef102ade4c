"""`optimize_program`: your own program, data, metric and optimizer, with the same MLflow tracking."""

from __future__ import annotations

import json
from pathlib import Path

import dspy
import pytest
from mlflow import MlflowClient

from dspy_rlm import ScriptedLM
from dspy_rlm.optimizers import optimize_program
from tests.mlflow_helpers import mlflow_store


def _examples(numbers):
    return [dspy.Example(question=str(n), answer=str(2 * n)).with_inputs("question") for n in numbers]


def exact(gold, pred):  # a two-argument metric, as people write them
    return float(gold.answer == pred.answer)


def test_your_own_program_is_compiled_scored_saved_and_tracked(tmp_path):
    program = dspy.Predict("question -> answer")
    trainset = [dspy.Example(question="1", answer="2").with_inputs("question")]
    with mlflow_store(tmp_path, "own-programs") as uri:
        lm = ScriptedLM(lambda r: {"answer": str(int(r.field("question")) * 2)}, model="scripted/double")
        result = optimize_program(program, trainset * 2, _examples([3, 4]), exact, "bootstrap", lm=lm,
                                  tracking_uri=uri, experiment="own-programs", output_dir=tmp_path / "out",
                                  name="doubler", progress=False)
        run = MlflowClient().get_run(result.run_id)
    assert result.family == "doubler" and result.baseline_score == 100.0 and result.compiled_score == 100.0
    assert Path(result.state_path).name == "doubler-bootstrap.json"
    assert json.loads(Path(result.state_path).read_text())["demos"]  # the bootstrapped demo was saved
    assert run.info.run_name == "doubler-bootstrap" and run.data.params["optimizer.max_bootstrapped_demos"] == "4"
    assert run.data.params["models.root"] == "scripted/double"
    assert run.data.metrics["final_test_score"] == 100.0 and run.info.status == "FINISHED"


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown optimizer 'adam'"):
        optimize_program(dspy.Predict("q -> a"), [], [], exact, "adam", tracking_uri=None)
    with pytest.raises(ValueError, match="gepa needs a reflection model"):
        optimize_program(dspy.Predict("q -> a"), [], [], exact, "gepa", tracking_uri=None)
    with pytest.raises(ValueError, match="No model for the program"):
        optimize_program(dspy.Predict("q -> a"), _examples([1]), _examples([1]), exact, tracking_uri=None)
