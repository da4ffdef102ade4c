"""Global limits of a call: each ends it with a typed error or a result, as configured."""

from __future__ import annotations

import time

import dspy
import pytest

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.core.limits import RunLimits
from dspy_rlm.errors import LimitExceeded, LMFailure
from tests.helpers import step, steps


def looping_model(code: str = "print('working')", model: str = "scripted/lm", latency: float = 0.0) -> ScriptedLM:
    return ScriptedLM(lambda request: step(code), model=model, latency=latency)


def test_a_slow_root_model_cannot_hold_the_call_past_its_deadline():
    rlm = RLM("context -> answer", max_time=1.0, on_limit="raise")
    started = time.monotonic()
    with dspy.context(lm=looping_model(latency=30)):
        with pytest.raises(LimitExceeded) as raised:
            rlm(context="x")
    assert time.monotonic() - started < 10  # the model alone would take 30 s
    assert raised.value.limit == "deadline"
    assert "deadline passed" in raised.value.trajectory[0]["output"]


def test_a_hanging_sub_query_cannot_hold_the_call_past_its_deadline():
    rlm = RLM("context -> answer", max_time=2.0, on_limit="return", sub_lm=looping_model(latency=30))
    started = time.monotonic()
    with dspy.context(lm=steps("x = llm_query('slow?')", "SUBMIT(answer='late')")):
        result = rlm(context="x")
    assert time.monotonic() - started < 12
    assert result.limit == "deadline"
    assert "deadline" in result.trajectory[0]["output"]


def test_token_limit_returns_the_best_answer_known_so_far():
    lm = steps("SUBMIT(answer='not an int')", "print('more')", "print('more')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer: int", max_tokens=1, on_limit="return")(context="x")
    assert result.limit == "tokens"
    assert result.answer == "not an int"  # the last submission, unvalidated: the best known
    assert len(result.trajectory) == 1


def test_no_sub_query_starts_once_the_token_limit_is_reached_even_mid_step():
    lm = steps("answers = [llm_query(f'q{i}') for i in range(5)]",
               "print(llm_query_batched(['a', 'b']))", "print('more')")
    sub = ScriptedLM(lambda request: {"response": "ok"})
    with dspy.context(lm=lm):
        result = RLM("context -> answer", max_tokens=1, on_limit="return", sub_lm=sub)(context="x")
    assert result.limit == "tokens"
    assert result.usage["sub_calls"] == 0  # the root call alone reached the limit
    assert "BudgetExceeded: this call has reached its token limit (max_tokens=1)" in result.trajectory[0]["output"]


def test_cost_limit_uses_the_models_published_prices():
    lm = looping_model(model="openai/gpt-4o-mini")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", max_cost=1e-9, on_limit="return")(context="x")
    assert result.limit == "cost"
    assert result.usage["cost_usd"] > 0


def test_consecutive_errors_end_the_call_with_the_partial_trajectory():
    with dspy.context(lm=looping_model("1 / 0")):
        with pytest.raises(LimitExceeded) as raised:
            RLM("context -> answer", max_consecutive_errors=3, on_limit="raise")(context="x")
    error = raised.value
    assert error.limit == "consecutive_errors"
    assert [s["error"] for s in error.trajectory] == ["exception"] * 3
    assert error.usage["root_calls"] == 3


def test_asking_again_after_the_sub_call_budget_is_spent_ends_the_call():
    lm = ScriptedLM([step("a = llm_query('1')"), step("b = llm_query('2')"), step("c = llm_query('3')"),
                     {"answer": "extracted"}])
    sub = ScriptedLM(lambda r: {"response": "ok"})
    with dspy.context(lm=lm):
        result = RLM("context -> answer", max_llm_calls=1, sub_lm=sub)(context="x")
    assert result.limit == "sub_calls"
    assert result.answer == "extracted"
    assert "budget exhausted" in result.trajectory[1]["output"]


def test_running_out_of_iterations_can_raise_instead_of_extracting():
    with dspy.context(lm=looping_model()):
        with pytest.raises(LimitExceeded, match="iterations") as raised:
            RLM("context -> answer", max_iters=2, on_limit="raise")(context="x")
    assert len(raised.value.trajectory) == 2 and raised.value.best_answer is None


def test_a_failing_root_model_ends_the_call_with_a_typed_error():
    def broken(request):
        raise ConnectionResetError("connection reset by peer")

    with dspy.context(lm=ScriptedLM(broken)):
        with pytest.raises(LMFailure, match="connection reset") as raised:
            RLM("context -> answer")(context="x")
    assert raised.value.trajectory == []


def test_sandbox_code_cannot_change_the_limits():
    code = "import builtins\nfor name in dir(builtins):\n    pass\nmax_llm_calls = 10**6\nprint(llm_query('a'))"
    lm = steps(code, "print(llm_query('b'))", "print(llm_query('c'))", "SUBMIT(answer='x')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", max_llm_calls=1, sub_lm=looping_model(),
                     on_limit="return")(context="x")
    assert result.usage["sub_calls"] == 1
    assert result.limit == "sub_calls"


@pytest.mark.parametrize("bad", [{"max_time": 0}, {"max_tokens": -1}, {"on_limit": "explode"}, {"max_wall": 3}])
def test_limits_are_validated(bad):
    with pytest.raises(ValueError):
        RunLimits(**bad)
