"""Global limits, continued: the async path, a CPU-bound step at the deadline, an `extract`
that fails or runs late, and concurrent calls that each keep their own limits."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.errors import LimitExceeded, LMFailure
from tests.helpers import step, steps


def looping_model(code: str = "print('working')", latency: float = 0.0) -> ScriptedLM:
    return ScriptedLM(lambda request: step(code), latency=latency)


def writes_code_then(extract):
    """A model that writes a step whenever asked for code, and answers `extract` with `extract(request)`."""

    def answer(request):
        return step("print('x')") if request.output_fields == ["reasoning", "code"] else extract(request)

    return ScriptedLM(answer)


# ---- the async path (acall) ----

async def test_acall_deadline_cancels_a_slow_root_model():
    started = time.monotonic()
    with dspy.context(lm=looping_model(latency=30)):
        with pytest.raises(LimitExceeded) as raised:
            await RLM("context -> answer", max_time=1.0, on_limit="raise").acall(context="x")
    assert time.monotonic() - started < 10
    assert raised.value.limit == "deadline"
    assert "deadline passed" in raised.value.trajectory[0]["output"]


async def test_acall_token_limit_returns_the_best_answer():
    lm = steps("SUBMIT(answer='not an int')", "print('more')", "print('more')")
    with dspy.context(lm=lm):
        result = await RLM("context -> answer: int", max_tokens=1, on_limit="return").acall(context="x")
    assert result.limit == "tokens" and result.answer == "not an int"


async def test_acall_consecutive_errors_raise_with_the_partial_trajectory():
    with dspy.context(lm=looping_model("1 / 0")):
        with pytest.raises(LimitExceeded) as raised:
            await RLM("context -> answer", max_consecutive_errors=2, on_limit="raise").acall(context="x")
    assert raised.value.limit == "consecutive_errors"
    assert [s["error"] for s in raised.value.trajectory] == ["exception", "exception"]


async def test_acall_sub_call_budget_and_extract():
    lm = ScriptedLM([step("a = llm_query('1')"), step("b = llm_query('2')"), step("c = llm_query('3')"),
                     {"answer": "extracted"}])
    sub = ScriptedLM(lambda r: {"response": "ok"})
    with dspy.context(lm=lm):
        result = await RLM("context -> answer", max_llm_calls=1, sub_lm=sub).acall(context="x")
    assert result.limit == "sub_calls" and result.answer == "extracted"
    assert result.usage["sub_calls"] == 1


async def test_acall_iterations_can_raise():
    with dspy.context(lm=looping_model()):
        with pytest.raises(LimitExceeded, match="iterations") as raised:
            await RLM("context -> answer", max_iters=2, on_limit="raise").acall(context="x")
    assert len(raised.value.trajectory) == 2


# ---- the deadline bounds sandbox steps too ----

def test_a_cpu_bound_step_is_cut_at_the_deadline_not_at_the_step_timeout():
    started = time.monotonic()
    with dspy.context(lm=steps("kept = 1", "while True:\n    pass", "SUBMIT(answer='late')")):
        result = RLM("context -> answer", max_time=2.0, step_timeout=60, on_limit="return")(context="x")
    assert time.monotonic() - started < 8
    assert result.limit == "deadline"
    assert result.trajectory[1]["error"] == "timeout"


# ---- extract that runs late or fails still ends with a result or a typed error ----

def test_an_extract_past_the_deadline_ends_at_the_deadline():
    def slow(request):
        time.sleep(10)
        return {"answer": "late"}

    started = time.monotonic()
    with dspy.context(lm=writes_code_then(slow)):
        result = RLM("context -> answer", max_iters=1, max_time=2.0)(context="x")
    assert time.monotonic() - started < 6
    assert result.limit == "deadline" and result.answer is None
    assert len(result.trajectory) == 1


@pytest.mark.parametrize("extract, error", [
    (lambda request: (_ for _ in ()).throw(ConnectionResetError("connection reset")), "LMUnexpectedError"),
    (lambda request: "not fields at all", "AdapterParseError"),
])
def test_a_failing_extract_raises_LMFailure_with_the_trajectory(extract, error):
    with dspy.context(lm=writes_code_then(extract)):
        with pytest.raises(LMFailure, match=error) as raised:
            RLM("context -> answer", max_iters=2)(context="x")
    assert len(raised.value.trajectory) == 2
    assert raised.value.usage["root_calls"] == 3


async def test_a_failing_extract_under_acall_raises_LMFailure():
    with dspy.context(lm=writes_code_then(lambda request: "not fields at all")):
        with pytest.raises(LMFailure, match="AdapterParseError"):
            await RLM("context -> answer", max_iters=1).acall(context="x")


# ---- limits belong to one call ----

def test_concurrent_calls_on_one_module_keep_their_own_limits():
    rlm = RLM("context -> answer", max_time=1.5, on_limit="return", max_llm_calls=1,
              sub_lm=ScriptedLM(lambda r: {"response": "ok"}))

    def call(slow: bool):
        lm = looping_model(latency=30) if slow else steps("print(llm_query('q'))", "SUBMIT(answer='fast')")
        with dspy.context(lm=lm):
            return rlm(context="x")

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, [True, False, True, False]))
    assert time.monotonic() - started < 10
    assert [r.answer for r in results] == [None, "fast", None, "fast"]
    assert [getattr(r, "limit", None) for r in results] == ["deadline", None, "deadline", None]
    assert all(r.usage["sub_calls"] == 1 for r in results[1::2])
