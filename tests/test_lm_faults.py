"""LM faults through a real client: a `dspy.LM("openai/...")` talking HTTP to the local server.

The server (`dspy_rlm.lms.simulated.server`) injects 429 with Retry-After, 500, slow answers,
malformed bodies and empty completions; a small TCP proxy here resets connections.
The root model's answers are scripted, so each test knows what a correct run returns.

What the RLM does with each fault (DSPy 3.4.1 retries LMRateLimitError, LMServerError,
LMTimeoutError and LMTransportError, honouring Retry-After, else backing off 1, 2, 4 s):

| fault | handled by | outcome |
|---|---|---|
| 429 + Retry-After, then OK | DSPy retry (waits Retry-After) | correct answer |
| 500, then OK | DSPy retry (1 s backoff) | correct answer |
| 500 past `num_retries` | `LMFailure` | typed error with the partial trajectory |
| connection reset, then OK | DSPy retry | correct answer |
| connection reset, every time | `LMFailure` | typed error |
| slow past the LM `timeout` | DSPy retry | correct answer |
| slow / endless 429 past `max_time` | the RLM deadline | `LimitExceeded("deadline")` or a result, on time |
| malformed JSON body | `LMFailure` (not retried: not transient) | typed error with the partial trajectory |
| empty completion (once) | ChatAdapter falls back to JSONAdapter | correct answer |
| empty completion (twice) | AdapterParseError recorded as a failed step | the run goes on |
| completion cut mid-code | a SyntaxError step | the run goes on |
| sub-model 500s | the step's `llm_query` raises in the sandbox | the run goes on |
| sub-model 401, no key, unknown model | the step ends, later sub-queries refused | `LMFailure` (key scrubbed) |
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Iterator

import dspy
import pytest

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.errors import LimitExceeded, LMFailure
from dspy_rlm.lms.simulated.server import serve_simulated
from tests.helpers import step

CONTEXT = "hello world"
ANSWER = str(len(CONTEXT))


class ServedScript(ScriptedLM):
    """A ScriptedLM the HTTP server can answer from (it calls `complete(request)`)."""

    def complete(self, request):
        return self._engine_spec.complete(request)


def counting_root(first: str = "n = len(context)\nprint(n)") -> ServedScript:
    """Step 1 prints the length; any later step submits it (so retries and failed steps don't matter)."""

    def answer(request):
        history = request.field("repl_history") or ""
        return step("SUBMIT(answer=str(len(context)))") if "=== Step" in history else step(first)

    return ServedScript(answer, model="scripted/root")


def client(server_or_url, **options) -> dspy.LM:
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    settings = {"num_retries": 2, "cache": False, **options}
    return dspy.LM("openai/scripted-root", api_base=url, api_key="sk-fake", **settings)


def statuses(server) -> list[tuple[str | None, int]]:
    return [(served.fault, served.status) for served in server.log]


def run(lm: dspy.LM, **rlm_options) -> dspy.Prediction:
    with dspy.context(lm=lm):
        return RLM("context -> answer", max_iters=5, **rlm_options)(context=CONTEXT)


# ---- transient faults are retried ----

def test_429_with_retry_after_is_retried_after_the_advertised_wait():
    with serve_simulated(counting_root(), faults=[None, "429"], retry_after=0.3) as server:
        started = time.perf_counter()
        result = run(client(server))
        elapsed = time.perf_counter() - started
    assert result.answer == ANSWER
    assert statuses(server) == [(None, 200), ("429", 429), (None, 200)]
    assert elapsed >= 0.3  # Retry-After was honoured
    assert [s["error"] for s in result.trajectory] == [None, None]


def test_500_is_retried_with_backoff():
    with serve_simulated(counting_root(), faults=[None, "500"]) as server:
        result = run(client(server))
    assert result.answer == ANSWER
    assert statuses(server) == [(None, 200), ("500", 500), (None, 200)]


def test_a_slow_answer_past_the_client_timeout_is_retried():
    with serve_simulated(counting_root(), faults=[None, "slow"], slow_seconds=3) as server:
        started = time.perf_counter()
        result = run(client(server, timeout=0.5))
    assert result.answer == ANSWER
    assert time.perf_counter() - started < 3  # the retry did not wait for the slow answer


def test_a_reset_connection_is_retried():
    with serve_simulated(counting_root()) as server, resetting_proxy(server, resets=[1]) as proxy:
        result = run(client(proxy.url))
    assert result.answer == ANSWER
    assert proxy.reset == 1 and len(server.log) == 2  # the reset request never reached the server


# ---- faults that outlast the retries end the call with a typed error ----

def test_500s_past_the_retries_raise_LMFailure_with_the_partial_trajectory():
    with serve_simulated(counting_root(), faults=[None, "500", "500", "500"]) as server:
        with pytest.raises(LMFailure, match="LMServerError") as raised:
            run(client(server))
    assert statuses(server)[1:] == [("500", 500)] * 3  # one try and two retries
    failure = raised.value
    assert len(failure.trajectory) == 1 and failure.trajectory[0]["output"].strip() == ANSWER
    assert failure.usage["root_calls"] == 2


def test_connections_reset_every_time_raise_LMFailure():
    with serve_simulated(counting_root()) as server, resetting_proxy(server, resets="all") as proxy:
        with pytest.raises(LMFailure) as raised:
            run(client(proxy.url, num_retries=1))
    assert proxy.reset == 2 and not server.log
    assert raised.value.trajectory == []


def test_a_malformed_body_raises_LMFailure_without_a_retry():
    with serve_simulated(counting_root(), faults=[None, "malformed"]) as server:
        with pytest.raises(LMFailure, match="not JSON") as raised:
            run(client(server))
    assert statuses(server) == [(None, 200), ("malformed", 200)]
    assert len(raised.value.trajectory) == 1


# ---- answers that parse badly are failed steps; the run goes on ----

def test_one_empty_completion_is_absorbed_by_the_adapter_fallback():
    with serve_simulated(counting_root(), faults=[None, "empty"]) as server:
        result = run(client(server))
    assert result.answer == ANSWER
    assert statuses(server) == [(None, 200), ("empty", 200), (None, 200)]


def test_repeated_empty_completions_are_a_failed_step_and_the_run_goes_on():
    with serve_simulated(counting_root(), faults=[None, "empty", "empty"]) as server:
        result = run(client(server))
    assert result.answer == ANSWER
    assert [s["error"] for s in result.trajectory] == [None, "generation", None]
    assert "could not be parsed" in result.trajectory[1]["output"]


def test_a_completion_cut_mid_code_is_a_syntax_error_step_and_the_run_goes_on():
    cut = "[[ ## reasoning ## ]]\nCount the characters.\n\n[[ ## code ## ]]\n```python\nn = len(context\nprint(n"

    def answer(request):
        history = request.field("repl_history") or ""
        return step("SUBMIT(answer=str(len(context)))") if "=== Step" in history else cut

    with serve_simulated(ServedScript(answer)) as server:
        result = run(client(server))
    assert result.answer == ANSWER
    first = result.trajectory[0]
    assert first["error"] == "syntax" and "SyntaxError" in first["output"]
    assert first["code"] == "n = len(context\nprint(n"


def test_sub_model_faults_reach_the_code_as_errors_and_the_run_goes_on():
    sub_script = ServedScript(lambda request: {"response": "fine"}, model="scripted/sub")
    root = ScriptedLM([
        step("try:\n    print(llm_query('are you there?'))\nexcept RuntimeError as e:\n    print('failed:', e)"),
        step("print(llm_query('and now?'))"),
        step("SUBMIT(answer=str(len(context)))"),
    ])
    with serve_simulated(sub_script, faults=["500", "500"]) as server:
        sub_lm = client(server, num_retries=1)
        with dspy.context(lm=root):
            result = RLM("context -> answer", sub_lm=sub_lm)(context=CONTEXT)
    assert result.answer == ANSWER
    first, second = result.trajectory[:2]
    assert "failed: llm_query: LMServerError" in first["output"]
    assert first["sub_queries"][0]["error"].startswith("LMServerError")
    assert second["output"].strip() == "fine"


# ---- nothing hangs past the deadline ----

@pytest.mark.parametrize("fault, options", [("slow", {"slow_seconds": 30}), ("429", {"retry_after": 3600})])
def test_a_stuck_model_cannot_hold_the_call_past_max_time(fault, options):
    with serve_simulated(counting_root(), faults=[None, fault, fault, fault], **options) as server:
        started = time.perf_counter()
        with pytest.raises(LimitExceeded) as raised:
            run(client(server), max_time=2.0, on_limit="raise")
        elapsed = time.perf_counter() - started
    assert raised.value.limit == "deadline"
    assert elapsed < 5
    assert raised.value.trajectory[0]["output"].strip() == ANSWER  # the partial trajectory survives
    assert "deadline passed" in raised.value.trajectory[-1]["output"]


async def test_faults_under_acall_are_retried_and_bounded_by_the_deadline():
    with serve_simulated(counting_root(), faults=[None, "429"], retry_after=0.1) as server:
        with dspy.context(lm=client(server)):
            result = await RLM("context -> answer", max_iters=5).acall(context=CONTEXT)
    assert result.answer == ANSWER and statuses(server)[1] == ("429", 429)

    with serve_simulated(counting_root(), faults=[None, "slow"], slow_seconds=30) as server:
        started = time.perf_counter()
        with dspy.context(lm=client(server)):
            result = await RLM("context -> answer", max_iters=5, max_time=2.0, on_limit="return").acall(context=CONTEXT)
    assert time.perf_counter() - started < 5
    assert result.limit == "deadline" and result.answer is None


# ---- a TCP proxy that resets connections ----

class _Proxy:
    def __init__(self, target: tuple[str, int], resets: list[int] | str):
        self.target = target
        self.resets = resets  # connection numbers (1-based) to reset, or "all"
        self.reset = 0
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            if self.resets == "all" or self.connections in self.resets:
                self._reset(conn)
            else:
                self._start(self._forward, conn)

    def _reset(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(2)
            conn.recv(65536)  # the request arrives; the reply never does
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        conn.close()
        self.reset += 1

    def _forward(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        pump = self._start(_pipe, upstream, conn)
        _pipe(conn, upstream)
        pump.join(timeout=5)

    def _start(self, target, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def resetting_proxy(server, resets: list[int] | str) -> Iterator[_Proxy]:
    proxy = _Proxy(server.server_address[:2], resets)
    thread = threading.Thread(target=proxy.serve, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.close()
        thread.join(timeout=5)


# ---- a misconfigured sub-model ends the call (it would only give failed sub-queries) ----

def test_a_sub_model_rejecting_the_key_ends_the_call_with_LMFailure_after_one_request():
    """Authentication errors are not observations: the call ends after the step, with its trajectory."""
    code = "answers = [llm_query(f'part {i}') for i in range(9)]"
    root = ScriptedLM([step(code), step("SUBMIT(answer='a wrong answer')")])
    with serve_simulated(ServedScript(lambda request: {"response": "fine"}), faults=["401"] * 9) as server:
        with dspy.context(lm=root), pytest.raises(LMFailure, match="sub-model cannot be used.*LMAuthError") as raised:
            RLM("context -> answer", sub_lm=client(server, num_retries=0))(context=CONTEXT)
    assert statuses(server) == [("401", 401)]  # later sub-queries were refused without a request
    trajectory = raised.value.trajectory
    assert len(trajectory) == 1 and trajectory[0]["sub_queries"][0]["error"].startswith("LMAuthError")


def test_a_sub_model_without_an_api_key_ends_the_call_with_LMFailure(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    root = ScriptedLM([step("print(llm_query_batched([f'part {i}' for i in range(9)]))"), step("SUBMIT(answer='x')")])
    sub_lm = dspy.LM("anthropic/claude-3-5-haiku-latest", num_retries=0, cache=False)
    with dspy.context(lm=root), pytest.raises(LMFailure, match="no API key") as raised:
        RLM("context -> answer", sub_lm=sub_lm)(context=CONTEXT)
    assert len(raised.value.trajectory) == 1


def test_a_sub_model_name_is_made_a_dspy_LM_and_anything_else_is_refused():
    rlm = RLM("context -> answer", sub_lm="openai/gpt-4o-mini")
    assert isinstance(rlm.sub_lm, dspy.LM) and rlm.sub_lm.model == "openai/gpt-4o-mini"
    with pytest.raises(TypeError, match="sub_lm must be a dspy.LM"):
        RLM("context -> answer", sub_lm=42)
