"""ScriptedLM: a test double for any DSPy program."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import ScriptedLM, ScriptExhausted


def test_answers_in_order_and_records_every_request():
    lm = ScriptedLM([{"answer": "one"}, "[[ ## answer ## ]]\ntwo\n\n[[ ## completed ## ]]"])
    qa = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        assert qa(question="first?").answer == "one"
        assert qa(question="second?").answer == "two"
    assert [r.field("question") for r in lm.requests] == ["first?", "second?"]
    assert lm.requests[0].output_fields == ["answer"]


def test_a_function_answers_from_the_request():
    lm = ScriptedLM(lambda request: {"answer": request.field("question").upper()})
    with dspy.context(lm=lm):
        assert dspy.Predict("question -> answer")(question="abc").answer == "ABC"


def test_running_out_of_answers_is_a_clear_error():
    lm = ScriptedLM([{"answer": "only"}])
    qa = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        qa(question="1")
        with pytest.raises(Exception, match="request #2 but its script has 1 answers") as raised:
            qa(question="2")
    # DSPy wraps engine errors in its own LM error type; the cause is kept.
    assert isinstance(raised.value, ScriptExhausted) or isinstance(raised.value.__cause__, ScriptExhausted)


def test_reports_estimated_token_usage():
    lm = ScriptedLM([{"answer": "x"}], model="scripted/usage")
    with dspy.context(lm=lm, track_usage=True):
        prediction = dspy.Predict("question -> answer")(question="q")
    usage = prediction.get_lm_usage()["scripted/usage"]
    assert usage["prompt_tokens"] > 10 and usage["completion_tokens"] >= 1


async def test_works_on_the_async_path():
    lm = ScriptedLM([{"answer": "async"}])
    with dspy.context(lm=lm):
        assert (await dspy.Predict("question -> answer").acall(question="q")).answer == "async"
