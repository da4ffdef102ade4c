"""The simulated model behind a local OpenAI-compatible endpoint: DSPy's real client path, and injected faults."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import dspy
import pytest

from dspy_rlm import RLM, SimulatedLM
from dspy_rlm.lms.simulated.server import serve_simulated
from dspy_rlm.programs.families import get_family

NIAH = get_family("niah")
ASK = ("What is the special magic number for amber-heron? Reply with the number only, or NONE if the text does not "
       "state it.\n---\nThe special magic number for amber-heron is 4242424.")


def client(server, **kwargs) -> dspy.LM:
    options = {"cache": False, "num_retries": 0, **kwargs}
    return dspy.LM("openai/sim-niah", api_base=server.base_url, api_key="sim", **options)


def ask(lm: dspy.LM) -> str:
    with dspy.context(lm=lm):
        return dspy.Predict("prompt -> response")(prompt=ASK).response


def post(server, body: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def server():
    with serve_simulated(SimulatedLM(NIAH.world(), error_rate=0.0), retry_after=0.2, slow_seconds=0.5) as running:
        yield running


def test_starts_on_a_free_port_and_stops():
    with serve_simulated() as server:
        port = server.server_address[1]
        assert port > 0 and server.base_url == f"http://127.0.0.1:{port}/v1"
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as response:
            models = json.loads(response.read())
        assert models["data"][0]["id"] == "sim/none" and "simulated" in models["data"][0]["owned_by"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_a_dspy_lm_call_goes_through_http_and_reports_usage(server):
    lm = client(server)
    assert ask(lm) == "4242424"
    assert lm.history[-1]["usage"]["prompt_tokens"] > 50 and lm.history[-1]["usage"]["completion_tokens"] > 0
    assert [(s.path, s.status) for s in server.log] == [("/v1/chat/completions", 200)]


def test_the_litellm_engine_works_too(server):
    assert ask(client(server, engine="litellm")) == "4242424"


def test_429_has_retry_after_and_dspy_retries_after_it(server):
    status, headers, body = post(server, {"messages": [{"role": "user", "content": "hi"}]}, {"X-Sim-Fault": "429"})
    assert status == 429 and headers["Retry-After"] == "0.2" and json.loads(body)["error"]["type"] == "rate_limit_error"
    server.schedule.extend(["429"])
    started = time.perf_counter()
    assert ask(client(server, num_retries=2)) == "4242424"
    assert time.perf_counter() - started >= 0.2
    assert [(s.fault, s.status) for s in server.log[-2:]] == [("429", 429), (None, 200)]


def test_500_is_retried(server):
    server.schedule.extend(["500"])
    assert ask(client(server, num_retries=1)) == "4242424"
    assert [s.status for s in server.log] == [500, 200]


def test_500_without_retries_fails():
    with serve_simulated(SimulatedLM(NIAH.world()), faults=["500"]) as server:
        with pytest.raises(Exception, match="500|[Ii]nternal"):
            ask(client(server))


def test_slow_responses_are_slow_and_can_time_out(server):
    server.schedule.extend(["slow"])
    started = time.perf_counter()
    assert ask(client(server)) == "4242424"
    assert time.perf_counter() - started >= 0.5
    server.schedule.extend(["slow"])
    with pytest.raises(Exception, match="[Tt]ime"):
        ask(client(server, timeout=0.1))


def test_malformed_bodies_and_empty_completions_are_errors_for_dspy(server):
    status, _, body = post(server, {"messages": [{"role": "user", "content": "hi"}]}, {"X-Sim-Fault": "malformed"})
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    server.schedule.extend(["malformed"])
    with pytest.raises(Exception):
        ask(client(server))
    status, _, body = post(server, {"messages": [{"role": "user", "content": "hi"}]}, {"X-Sim-Fault": "empty"})
    assert json.loads(body)["choices"][0]["message"]["content"] == ""
    server.schedule.extend(["empty", "empty"])  # ChatAdapter, then its JSONAdapter fallback, both get nothing
    with pytest.raises(Exception, match="[Pp]arse|empty|[Aa]dapter"):
        ask(client(server))


def test_bad_requests_get_clear_errors(server):
    status, _, body = post(server, {"messages": [{"role": "user", "content": "hi"}]}, {"X-Sim-Fault": "fire"})
    assert status == 400 and "Unknown fault 'fire'" in json.loads(body)["error"]["message"]
    status, _, body = post(server, {"nothing": True})
    assert status == 400 and "messages" in json.loads(body)["error"]["message"]
    with pytest.raises(ValueError, match="Unknown fault"):
        with serve_simulated(faults=["teapot"]):
            pass


def test_random_faults_follow_the_rate():
    with serve_simulated(SimulatedLM(NIAH.world()), fault_rate=0.5, seed=3, slow_seconds=0.01) as server:
        statuses = [post(server, {"messages": [{"role": "user", "content": "hi"}]})[0] for _ in range(30)]
    faults = [s.fault for s in server.log]
    assert 5 <= sum(f is not None for f in faults) <= 25 and len(statuses) == 30


def test_an_rlm_runs_end_to_end_through_the_endpoint():
    task = NIAH.make_task(2**13, 4)
    with serve_simulated(SimulatedLM(NIAH.world(), strategy="batched", error_rate=0.0), faults=["429"],
                         retry_after=0.1) as server:
        lm = client(server, num_retries=2)
        rlm = RLM("context, query -> answer", sub_lm=lm, max_iters=6)
        with dspy.context(lm=lm):
            result = rlm(context=task.context, query=task.query)
    assert result.answer == task.answer
    assert result.usage["sub_calls"] >= 2 and result.usage["root_calls"] == 3
    assert len([s for s in server.log if s.status == 200]) == result.usage["sub_calls"] + 3
    assert server.log[0].status == 429
