"""A compiled RLM program as a pickle-free pyfunc model: logged, loaded, served, batched."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from dspy_rlm import RLM
from dspy_rlm.serving.pyfunc import log_rlm_model, program_config
from tests.mlflow_helpers import mlflow_store

ROOT = "tests.mlflow_helpers:shouting_root_lm"


@pytest.fixture(scope="module")
def logged_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    with mlflow_store(folder, "serving-tests", autolog=False):
        program = RLM("context -> answer", max_iters=3)
        program.generate_code.signature = program.generate_code.signature.with_instructions("SHOUT the answer.")
        state = folder / "state.json"
        program.save(str(state))
        with mlflow.start_run():
            info = log_rlm_model(state, signature="context -> answer", rlm_kwargs={"max_iters": 3}, model=ROOT,
                                 input_example={"context": "abc"})
        yield info, folder


def test_the_model_is_stored_without_pickle_and_with_its_state_and_config(logged_model):
    info, folder = logged_model
    local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(folder / "download"))
    files = {p.relative_to(local).as_posix() for p in Path(local).rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]
    assert {"MLmodel", "model_code.py", "artifacts/state.json", "artifacts/program_config.json"} <= files
    config = json.loads((Path(local) / "artifacts/program_config.json").read_text())
    assert config["model"] == ROOT and config["signature"] == "context -> answer"
    assert "SHOUT" in (Path(local) / "artifacts/state.json").read_text()


def test_it_loads_with_pickle_disabled_and_answers_several_rows(logged_model, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = mlflow.pyfunc.load_model(logged_model[0].model_uri)
    out = model.predict(pd.DataFrame([{"context": "abc"}, {"context": "Xyz"}, {"context": "q"}]))
    assert [row["answer"] for row in out] == ["ABC", "XYZ", "Q"]  # the saved instructions were loaded
    assert all(row["trajectory"] and row["usage"]["root_calls"] == 1 for row in out)


def test_a_scoring_server_answers_batched_requests(logged_model):
    import uvicorn
    from mlflow.pyfunc import scoring_server

    app = scoring_server.init(mlflow.pyfunc.load_model(logged_model[0].model_uri))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        body = json.dumps({"dataframe_records": [{"context": "one"}, {"context": "two"}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
        assert [p["answer"] for p in predictions] == ["ONE", "TWO"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10) as response:
            assert response.status == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_config_holding_a_secret_is_refused():
    with pytest.raises(ValueError, match="must not hold secrets"):
        program_config(signature="context -> answer", model="openai/gpt-4o-mini", lm_kwargs={"api_key": "sk-x"})
    with pytest.raises(ValueError, match="exactly one of"):
        program_config(model="openai/gpt-4o-mini")


@pytest.mark.parametrize("lm_kwargs, where", [
    ({"api_base": "https://h.example/v1?api-key=s3cret-value"}, "lm_kwargs.api_base"),
    ({"api_base": "https://user:pa55word@h.example/v1"}, "lm_kwargs.api_base"),
    ({"headers": {"Cookie": "session=abc123"}}, "lm_kwargs.headers.Cookie"),
    ({"headers": {"Authorization": "Bearer abc123"}}, "lm_kwargs.headers.Authorization"),
    ({"extra_headers": {"X-Api-Key": "abc123"}}, "lm_kwargs.extra_headers.X-Api-Key"),
])
def test_a_secret_in_a_url_or_a_header_is_refused_and_its_place_named(lm_kwargs, where):
    with pytest.raises(ValueError, match=f"must not hold secrets.*{re.escape(where)}"):
        program_config(signature="context -> answer", model="openai/gpt-4o-mini", lm_kwargs=lm_kwargs)


def test_a_config_with_plain_urls_and_headers_is_kept():
    lm_kwargs = {"api_base": "http://127.0.0.1:8000/v1?api-version=2024-06-01", "headers": {"X-Title": "demo"}}
    config = program_config(signature="context -> answer", model="openai/gpt-4o-mini", lm_kwargs=lm_kwargs)
    assert config["lm_kwargs"] == lm_kwargs
