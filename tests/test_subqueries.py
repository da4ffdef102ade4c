"""llm_query / llm_query_batched: routing, concurrency, budget, prompt caps and errors."""

from __future__ import annotations

import threading
import time

import dspy

from dspy_rlm import RLM, ScriptedLM
from tests.helpers import steps


def echo_sub(model: str = "scripted/sub") -> ScriptedLM:
    return ScriptedLM(lambda r: {"response": f"<{r.field('prompt')}>"}, model=model)


def run(code_steps, **rlm_kwargs):
    lm = steps(*code_steps)
    with dspy.context(lm=lm):
        result = RLM("context -> answer", **rlm_kwargs)(context="ctx")
    return result, lm


def test_sub_queries_go_through_the_sub_query_predictor_on_sub_lm():
    sub = echo_sub()
    result, root = run(["SUBMIT(answer=llm_query('hello'))"], sub_lm=sub)
    assert result.answer == "<hello>"
    assert len(sub.requests) == 1 and "prompt" in sub.requests[0].text
    assert len(root.requests) == 1  # the root model was not used for the sub-query


def test_sub_queries_default_to_the_configured_lm():
    lm = ScriptedLM([{"reasoning": "r", "code": "```python\nSUBMIT(answer=llm_query('q'))\n```"}, {"response": "sub-answer"}])
    with dspy.context(lm=lm):
        assert RLM("context -> answer")(context="x").answer == "sub-answer"


def test_batched_prompts_run_concurrently_up_to_max_concurrency():
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return {"response": request.field("prompt")}

    code = "out = llm_query_batched([str(i) for i in range(40)])\nSUBMIT(answer=','.join(out))"
    result, _ = run([code], sub_lm=ScriptedLM(slow), max_concurrency=8, max_llm_calls=40)
    assert result.answer == ",".join(str(i) for i in range(40))
    assert 2 <= peak[0] <= 8


def test_llm_batch_is_an_alias():
    result, _ = run(["SUBMIT(answer='|'.join(llm_batch(['a', 'b'])))"], sub_lm=echo_sub())
    assert result.answer == "<a>|<b>"


def test_one_failed_slot_returns_an_error_string_and_the_others_succeed():
    def flaky(request):
        if request.field("prompt") == "bad":
            raise RuntimeError("provider said no")
        return {"response": "fine"}

    code = "SUBMIT(answer=' || '.join(llm_query_batched(['a', 'bad', 'c'])))"
    result, _ = run([code], sub_lm=ScriptedLM(flaky))
    answers = result.answer.split(" || ")
    assert answers[0] == "fine" and answers[2] == "fine"
    assert answers[1].startswith("[ERROR]") and "provider said no" in answers[1]


def test_the_budget_is_shared_and_going_over_it_is_a_clear_message_not_a_crash():
    code_steps = [
        "a = llm_query('1')\nb = llm_query_batched(['2', '3'])",
        "c = llm_query('4')",
        "SUBMIT(answer='survived')",
    ]
    result, _ = run(code_steps, sub_lm=echo_sub(), max_llm_calls=3)
    assert result.answer == "survived"
    assert "sub-LLM call budget exhausted: 3 of 3 calls used" in result.trajectory[1]["output"]
    assert result.usage["sub_calls"] == 3


def test_oversized_prompts_are_refused_with_the_limit_and_the_fix():
    result, _ = run(["llm_query('x' * 2000)", "SUBMIT(answer='ok')"], sub_lm=echo_sub(), max_prompt_chars=1000)
    output = result.trajectory[0]["output"]
    assert "2,000 characters, over the limit of 1,000" in output and "llm_query_batched" in output


def test_callback_errors_reach_the_sandbox_as_short_messages_without_host_tracebacks():
    def broken(request):
        raise ValueError("secret host detail stays short")

    code = "try:\n    llm_query('x')\nexcept Exception as e:\n    print('caught', type(e).__name__, e)"
    result, _ = run([code, "SUBMIT(answer='ok')"], sub_lm=ScriptedLM(broken))
    output = result.trajectory[0]["output"]
    assert "caught RuntimeError" in output and "secret host detail stays short" in output
    assert "Traceback" not in output and "site-packages" not in output and ".py" not in output


def test_each_step_records_its_sub_queries():
    result, _ = run(["x = llm_query_batched(['a', 'bb'])", "SUBMIT(answer='ok')"], sub_lm=echo_sub())
    records = result.trajectory[0]["sub_queries"]
    assert sorted(r["prompt_chars"] for r in records) == [1, 2]
    assert result.trajectory[1]["sub_queries"] == []


def test_a_lone_surrogate_in_a_sub_model_answer_reaches_the_code_intact():
    """UTF-8 cannot carry "\\udfff" into the sandbox as text; it travels escaped and arrives as written."""
    sub = ScriptedLM(lambda r: {"response": "ok\udfff"}, model="scripted/sub")
    result, _ = run(["SUBMIT(answer=llm_query('hello'))"], sub_lm=sub)
    assert result.answer == "ok\udfff"


def test_a_lone_surrogate_in_a_prompt_is_refused_before_any_request_with_the_fix_named():
    """No provider can receive a lone surrogate: the code hears why, and no sub-model call is spent."""
    sub = echo_sub()
    code = "try:\n    llm_query('a\\ud800b')\nexcept Exception as e:\n    print(e)\nSUBMIT(answer='done')"
    result, _ = run([code], sub_lm=sub)
    output = result.trajectory[0]["output"]
    assert "llm_query" in output and "lone surrogate (U+D800)" in output and "encode('utf-8', 'replace')" in output
    assert "context_json" not in output and not sub.requests
