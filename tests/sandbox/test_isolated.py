"""IsolatedSandbox: the Sandbox interface with the guest in a child process."""

from __future__ import annotations

import gc
import os
import signal
import time

import dspy
import pytest
from pydantic import BaseModel

from dspy_rlm.errors import SandboxClosed, SandboxUnavailable
from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.sandbox import IsolatedSandbox, SandboxLimits
from dspy_rlm.sandbox import isolated as isolated_module
from tests.helpers import steps

pytestmark = pytest.mark.usefixtures("eryx_factory")


class Point(BaseModel):
    x: int
    y: int


def test_inputs_variables_and_host_functions_work_as_in_process(make_isolated):
    calls = []

    def shout(text: str) -> str:
        calls.append(os.getpid())
        return text.upper()

    sandbox = make_isolated({"context": "hello", "point": Point(x=1, y=2)}, {"shout": shout})
    first = sandbox.run("loud = shout(context)\nprint(loud, point['y'])")
    assert first.stdout == "HELLO 2\n" and first.error is None
    assert sandbox.variables == ["loud"]
    assert sandbox.run("print(loud * 2)").stdout == "HELLOHELLO\n"
    assert calls == [os.getpid()]  # the function ran here, not in the worker


def test_host_function_errors_read_as_they_do_in_process(make_isolated):
    def refuse() -> None:
        raise ValueError("not today")

    result = make_isolated({}, {"refuse": refuse}).run("refuse()")
    assert result.error_kind == "exception"
    assert "ValueError: not today" in result.error


def test_a_worker_that_dies_mid_step_is_replaced_and_the_step_says_what_was_lost(make_isolated):
    holder = {}

    def kill_worker() -> None:
        os.kill(holder["sandbox"]._worker.process.pid, signal.SIGKILL)
        time.sleep(5)  # the step never gets an answer

    sandbox = holder["sandbox"] = make_isolated({"context": "abc"}, {"kill_worker": kill_worker})
    sandbox.run("kept = 1")
    died = sandbox.run("kill_worker()")
    assert died.error_kind == "crash" and died.restarted
    assert "SandboxCrash" in died.error and died.lost_variables == ["kept"]
    assert "variables lost: kept" in died.observation
    after = sandbox.run("print(len(context), 'kept' in globals())")
    assert after.stdout == "3 False\n"  # inputs re-mounted, variables gone


def test_step_timeouts_and_new_inputs_reach_the_worker(make_isolated):
    sandbox = make_isolated({"context": "abc"}, limits=SandboxLimits(step_timeout_s=1.0))
    assert sandbox.run("while True: pass").error_kind == "timeout"
    sandbox.set_inputs({"extra": [1, 2, 3]})
    assert sandbox.run("print(sum(extra), context)").stdout == "6 abc\n"


def test_the_worker_gets_no_secrets_from_the_environment(make_isolated, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-isolated-secret")
    isolated_module.stop_idle_workers()  # so the worker starts now, with the key in our environment
    sandbox = make_isolated({"context": "x"})
    with open(f"/proc/{sandbox._worker.process.pid}/environ", "rb") as file:
        environment = file.read()
    assert b"sk-isolated-secret" not in environment and b"PATH=" in environment


def test_a_closed_sandboxs_worker_serves_the_next_sandbox_with_nothing_left_over(make_isolated):
    first = make_isolated({"context": "first"})
    first.run("secret = 42")
    process = first._worker.process
    first.close()
    with pytest.raises(SandboxClosed):
        first.run("1")
    assert process.poll() is None and len(isolated_module._idle) <= isolated_module.IDLE_WORKERS
    later = [make_isolated({"context": "second"}) for _ in range(isolated_module.IDLE_WORKERS)]
    assert process in [sandbox._worker.process for sandbox in later]  # reused, not restarted
    for sandbox in later:
        assert sandbox.run("print(context, 'secret' in globals())").stdout == "second False\n"


def test_dropping_a_sandbox_ends_its_worker():
    dropped = IsolatedSandbox({"context": "x"})
    process = dropped._worker.process
    del dropped
    gc.collect()
    assert process.wait(timeout=10) is not None


def test_bad_input_is_refused_before_a_worker_starts():
    with pytest.raises(ValueError, match="not a valid Python identifier"):
        IsolatedSandbox({"not a name": 1})
    with pytest.raises(SandboxUnavailable, match="setup_code failed"):
        IsolatedSandbox({}, setup_code="1 / 0")


def test_an_rlm_call_can_run_in_an_isolated_sandbox():
    lm = steps("parts = llm_query_batched([context[:3], context[3:]])", "SUBMIT(answer='|'.join(parts))")
    with dspy.context(lm=lm):
        sub = ScriptedLM(lambda request: {"response": request.field("prompt").upper()})
        result = RLM("context -> answer", isolate_process=True, sub_lm=sub)(context="abcdef")
    assert result.answer == "ABC|DEF"
    assert result.trajectory[0]["error"] is None


def test_acall_and_concurrent_calls_each_get_their_own_worker():
    import asyncio

    async def call(context: str):
        lm = steps("half = llm_query(context)", "SUBMIT(answer=half)")
        sub = ScriptedLM(lambda request: {"response": request.field("prompt")[::-1]})
        with dspy.context(lm=lm):
            return await RLM("context -> answer", isolate_process=True, sub_lm=sub).acall(context=context)

    async def both():
        return await asyncio.gather(call("abc"), call("xyz"))

    assert [r.answer for r in asyncio.run(both())] == ["cba", "zyx"]
