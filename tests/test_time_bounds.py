"""Time bounds reach into host calls: a tool or sub-query that hangs is abandoned at the step's
timeout or the call's deadline (`max_time`), and the step says so truthfully."""

from __future__ import annotations

import asyncio
import threading
import time

import dspy
import pytest

from dspy_rlm import RLM, ScriptedLM, settings
from dspy_rlm.sandbox import IsolatedSandbox, SandboxLimits
from tests.helpers import steps

HANG_S = 20.0  # far past every limit below: a test that waits for it has failed


@pytest.fixture
def hanging_tool():
    """A tool that blocks for HANG_S seconds (released when the test ends, so no thread lingers)."""
    release = threading.Event()
    calls = []

    def slow_tool(x: int) -> int:
        """Hangs."""
        calls.append(x)
        release.wait(HANG_S)
        return x

    slow_tool.calls = calls
    yield slow_tool
    release.set()


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_hanging_tool_is_abandoned_at_the_step_timeout(hanging_tool):
    lm = steps("print(slow_tool(1))", "SUBMIT(answer='after')")
    with dspy.context(lm=lm):
        result, seconds = timed(lambda: RLM("context -> answer", tools=[hanging_tool], step_timeout=2)(context="x"))
    assert seconds < 3 * 2 + 3  # not the tool's 20 s
    first = result.trajectory[0]
    assert first["error"] == "timeout"
    assert "slow_tool" in first["output"] and "abandoned" in first["output"]
    assert result.answer == "after"  # the call went on with the next step


def test_a_hanging_tool_cannot_hold_the_call_past_max_time(hanging_tool):
    lm = steps("print(slow_tool(1))", "SUBMIT(answer='late')")
    with dspy.context(lm=lm):
        result, seconds = timed(lambda: RLM("context -> answer", tools=[hanging_tool], max_time=3, step_timeout=60,
                                            on_limit="return")(context="x"))
    assert seconds < 3 * 3
    assert result.limit == "deadline"
    output = result.trajectory[0]["output"]
    assert "slow_tool" in output and "abandoned" in output and "max_time" in output


def test_a_hanging_sub_query_is_abandoned_at_the_step_timeout_without_max_time():
    sub = ScriptedLM(lambda r: {"response": "late"}, model="scripted/sub", latency=HANG_S)
    lm = steps("print(llm_query('hello'))", "SUBMIT(answer='after')")
    with dspy.context(lm=lm):
        result, seconds = timed(lambda: RLM("context -> answer", sub_lm=sub, step_timeout=2)(context="x"))
    assert seconds < 3 * 2 + 3
    first = result.trajectory[0]
    assert first["error"] == "timeout" and "llm_query" in first["output"] and "abandoned" in first["output"]


def test_batch_slots_still_queued_at_the_deadline_make_no_model_call():
    """Slots waiting for their turn (max_concurrency) when max_time passes are cancelled, not run late."""
    sub = ScriptedLM(lambda r: {"response": "ok"}, model="scripted/sub", latency=0.5)
    lm = steps("print(llm_query_batched([f'q{i}' for i in range(20)]))", "SUBMIT(answer='after')")
    with dspy.context(lm=lm):
        RLM("context -> answer", sub_lm=sub, max_concurrency=2, max_time=2, on_limit="return")(context="x")
    time.sleep(4)  # by now, every queued slot would have had its turn (20 × 0.5 s over 2 threads)
    assert len(sub.requests) <= 10, f"{len(sub.requests)} of 20 slots called the model after a 2 s deadline"


async def test_under_acall_a_hanging_sub_query_is_abandoned_and_its_coroutine_cancelled():
    sub = ScriptedLM(lambda r: {"response": "late"}, model="scripted/sub", latency=HANG_S)
    lm = steps("print(llm_query('hello'))", "SUBMIT(answer='after')")
    started = time.monotonic()
    with dspy.context(lm=lm):
        result = await RLM("context -> answer", sub_lm=sub, step_timeout=2).acall(context="x")
    assert time.monotonic() - started < 3 * 2 + 3
    assert result.trajectory[0]["error"] == "timeout" and "abandoned" in result.trajectory[0]["output"]
    for _ in range(50):  # the abandoned sub-query's task is cancelled soon after, not left for 20 s
        if asyncio.all_tasks() == {asyncio.current_task()}:
            break
        await asyncio.sleep(0.1)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_under_acall_a_hanging_async_tool_is_abandoned_at_the_step_timeout():
    async def slow_async(x: int) -> int:
        """Hangs."""
        await asyncio.sleep(HANG_S)
        return x

    lm = steps("print(slow_async(1))", "SUBMIT(answer='after')")
    started = time.monotonic()
    with dspy.context(lm=lm):
        result = await RLM("context -> answer", tools=[slow_async], step_timeout=2).acall(context="x")
    assert time.monotonic() - started < 3 * 2 + 3
    assert result.trajectory[0]["error"] == "timeout" and "slow_async" in result.trajectory[0]["output"]


def test_in_an_isolated_sandbox_a_hanging_tool_is_abandoned_at_the_step_timeout(hanging_tool):
    lm = steps("print(slow_tool(1))", "SUBMIT(answer='after')")
    with dspy.context(lm=lm):
        result, seconds = timed(lambda: RLM("context -> answer", tools=[hanging_tool], step_timeout=2,
                                            isolate_process=True)(context="x"))
    assert seconds < 3 * 2 + 6  # plus a worker start
    first = result.trajectory[0]
    assert first["error"] == "timeout" and "slow_tool" in first["output"] and "abandoned" in first["output"]
    assert result.answer == "after"


def test_the_sandbox_reports_which_call_was_abandoned(make, hanging_tool):
    sandbox = make({}, {"slow_tool": hanging_tool}, limits=SandboxLimits(step_timeout_s=1))
    result, seconds = timed(lambda: sandbox.run("x = 1\nslow_tool(1)"))
    assert seconds < 3 * 1 + 2
    assert result.error_kind == "timeout" and result.restarted
    assert result.error.startswith("TimeoutError: the step ran longer than 1 s")
    assert any("slow_tool" in note and "abandoned" in note for note in result.notes)


def test_an_isolated_worker_waits_for_a_call_no_longer_than_the_step(make_isolated, hanging_tool):
    sandbox = make_isolated({}, {"slow_tool": hanging_tool}, limits=SandboxLimits(step_timeout_s=1))
    assert isinstance(sandbox, IsolatedSandbox)
    result, seconds = timed(lambda: sandbox.run("slow_tool(1)"))
    assert seconds < 3 * 1 + 2
    assert result.error_kind == "timeout"
    assert any("slow_tool" in note and "abandoned" in note for note in result.notes)
    assert sandbox.run("print('alive')").stdout == "alive\n"


def test_an_isolated_sandbox_cancels_an_abandoned_async_tool_in_the_host(make_isolated):
    """The worker sends its bound with the call, so the host cancels the call, not only the worker's wait."""
    cancelled = threading.Event()

    async def slow_async(x: int) -> int:
        try:
            await asyncio.sleep(HANG_S)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    sandbox = make_isolated({}, {"slow_async": slow_async}, limits=SandboxLimits(step_timeout_s=1))
    result = sandbox.run("slow_async(1)")
    assert result.error_kind == "timeout"
    assert cancelled.wait(5), "the host ran the abandoned call on instead of cancelling it"


def test_a_call_that_ends_in_time_is_unchanged(make):
    sandbox = make({}, {"double": lambda x: 2 * x}, limits=SandboxLimits(step_timeout_s=5))
    result = sandbox.run("print(double(21))")
    assert result.stdout == "42\n" and result.error is None


def test_the_callback_cap_defaults_to_the_step_timeout_not_ten_minutes():
    assert SandboxLimits().callback_timeout_s == settings.STEP_TIMEOUT_S
    assert SandboxLimits(step_timeout_s=5).callback_timeout_s == 5
    assert SandboxLimits(step_timeout_s=5, callback_timeout_s=2).callback_timeout_s == 2


def test_a_call_over_its_cap_but_within_the_step_is_an_error_the_code_can_handle(make, hanging_tool):
    sandbox = make({}, {"slow_tool": hanging_tool}, limits=SandboxLimits(step_timeout_s=10, callback_timeout_s=0.5))
    result, seconds = timed(lambda: sandbox.run("try:\n    slow_tool(1)\nexcept RuntimeError as e:\n    print(e)"))
    assert seconds < 3 * 0.5 + 2
    assert result.error is None and not result.restarted
    assert result.stdout == "slow_tool: the call took longer than 0.5 s and was abandoned\n"


def test_an_abandoned_call_leaves_no_worker_waiting_for_its_reply():
    """The worker's stand-in for a host function waits no longer than the call's bound (not 600 s)."""
    import contextvars
    import os

    from dspy_rlm.sandbox.hostcalls import ABANDONED, call_host_function
    from dspy_rlm.sandbox.worker import Channel

    never_answers, _ = os.pipe()
    _, discarded = os.pipe()
    channel = Channel(os.fdopen(never_answers, "rb"), os.fdopen(discarded, "wb"), on_closed=lambda: None)
    value = call_host_function(channel.host_function("slow_tool"), contextvars.copy_context(), [], {}, timeout_s=0.2)
    assert value is ABANDONED
    for _ in range(60):
        if not channel._replies:
            break
        time.sleep(0.1)
    assert not channel._replies  # the waiting stand-in gave up soon after the call was abandoned


def test_daemon_threads_are_reused_yet_a_call_never_waits_behind_a_busy_one(monkeypatch):
    """Calls that wait on calls they submit (a step on its host calls, a host call on its sub-queries)
    always find a thread, also while idle threads are ending."""
    import random

    from dspy_rlm.sandbox import hostcalls

    monkeypatch.setattr(hostcalls._threads, "idle_s", 0.05)  # threads end (and are restarted) often

    def nested(depth: int) -> int:
        if depth == 0:
            time.sleep(random.random() * 0.01)
            return 1
        return hostcalls.submit_daemon(nested, depth - 1).result(timeout=10)

    for _ in range(20):
        futures = [hostcalls.submit_daemon(nested, 3) for _ in range(20)]
        assert sum(future.result(timeout=10) for future in futures) == 20
        time.sleep(random.random() * 0.1)
