"""No API key reaches a run, a trace, an artifact, a logged model or the log output.

A real `dspy.LM` (LiteLLM's OpenAI client) gets a fake key and talks to the local
OpenAI-compatible server of the simulated model; then every byte of the store is searched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

import dspy_rlm.programs.families  # noqa: F401  (registers the simulated worlds)
from dspy_rlm.lms.simulated.server import serve_simulated
from dspy_rlm.lms.simulated.lm import make_lm
from dspy_rlm.optimizers import optimize
from tests.mlflow_helpers import mlflow_store, traces

FAKE_KEY = "sk-fake-9f3b7c2e1d-do-not-store"


def test_a_fake_key_never_reaches_the_store_the_artifacts_or_the_logs(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with mlflow_store(tmp_path, "secrets") as uri, serve_simulated(make_lm("sim/niah")) as server:
        result = optimize(
            "niah", "bootstrap", model="openai/sim/niah", tracking_uri=uri, experiment="secrets",
            lm_kwargs={"api_key": FAKE_KEY, "api_base": server.base_url, "cache": False},
            sizes={"train": 3, "dev": 3, "test": 3, "context": 2048}, output_dir=tmp_path / "out",
            progress=False, log_model=True,
        )
        assert server.log and all(s.status == 200 for s in server.log)  # the real client path was used
        run = MlflowClient().get_run(result.run_id)
        assert run.data.params["models.root"] == "openai/sim/niah"
        found = traces()
        assert found and any(s.name == "LM.__call__" for t in found for s in t.data.spans)
        model_dir = mlflow.artifacts.download_artifacts(f"models:/{_logged_model_id(result.run_id)}",
                                                        dst_path=str(tmp_path / "model"))
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert not leaks, f"the key was written to {leaks}"
    assert Path(model_dir, "artifacts", "program_config.json").exists()
    out, err = capfd.readouterr()
    assert FAKE_KEY not in out + err
    assert FAKE_KEY not in caplog.text and not any(FAKE_KEY in str(r.args) for r in caplog.records)


def _logged_model_id(run_id: str) -> str:
    models = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    served = [m for m in models if m.name == "rlm_program"]
    if not served:
        pytest.fail(f"no rlm_program model logged by run {run_id}: {[m.name for m in models]}")
    return served[0].model_id
