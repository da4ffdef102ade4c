"""Over real HTTP, to a third-party server (llama.cpp) with a real tiny model (SmolLM2-135M).

What this proves is the plumbing users take with a local model: DSPy's client reaches the server,
structured output parses, and an RLM whose sub-model is the real one finishes within its deadline.
Not accuracy: the model is far too small to write RLM code, so the root model is the simulated one.
"""

from __future__ import annotations

import json
import time

import dspy
import pytest

from dspy_rlm import RLM, SimulatedLM
from dspy_rlm.programs.families import get_family
from tests.helpers import steps
from tests.real_model.conftest import BASE

pytestmark = pytest.mark.real_model


def test_dspy_reaches_the_server_and_gets_text(local_lm):
    lm = local_lm(max_tokens=16)
    (reply,) = lm("Say hello in one word.")
    assert isinstance(reply, str) and reply.strip()
    assert lm.history[-1]["usage"]["completion_tokens"] <= 16  # the token cap held


def test_a_json_schema_in_response_format_makes_the_reply_parse(local_lm):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    lm = local_lm(max_tokens=64)
    (reply,) = lm(messages=[{"role": "user", "content": "What is the capital of France? Reply in JSON."}],
                  response_format={"type": "json_object", "schema": schema})
    assert isinstance(json.loads(reply)["answer"], str)


def test_an_rlm_with_the_real_model_as_sub_model_finishes_within_its_deadline(local_lm):
    family = get_family("niah")
    task = family.make_task(4096, 0)
    sub = local_lm(max_tokens=32)
    rlm = RLM(family.signature, max_iters=4, max_llm_calls=6, sub_lm=sub, max_time=240, on_limit="return")
    started = time.monotonic()
    with dspy.context(lm=SimulatedLM(family.world(), seed=0, strategy="batched")):  # it asks the sub-model
        result = rlm(context=task.context, query=task.query)
    assert time.monotonic() - started < 240 * 1.25
    assert result.trajectory  # whatever the answers, the call ran and ended
    assert any(sub.history), "no sub-query reached the real server"


def test_a_runaway_generation_is_cut_by_our_token_cap_not_by_the_servers_context():
    """DSPy's default engine sends `max_completion_tokens`, which this server ignores (625 tokens for
    a cap of 40, measured). The RLM sends the cap as `max_tokens` too; with
    DSPY_RLM_LOCAL_TOKEN_CAP=0 (our protection off) this test fails."""
    sub = dspy.LM("openai/smollm2", api_base=BASE, api_key="local-server", max_tokens=40, temperature=0.0,
                  cache=False, num_retries=0)  # the default engine, as a user would write it
    # A 135M model's reply rarely parses (DSPy's adapters may ask twice); only the length matters here.
    code = ("try:\n    llm_query('Write a very long story about a dragon, at least 3000 words.')\n"
            "except Exception as error:\n    print(error)\nSUBMIT(answer='asked')")
    with dspy.context(lm=steps(code)):
        RLM("context -> answer", sub_lm=sub, max_time=240)(context="x")
    generated = [call["usage"]["completion_tokens"] for call in sub.history]
    assert generated and max(generated) <= 40, f"the server generated {generated} tokens for a cap of 40"


def test_the_schema_adapter_makes_the_servers_replies_parse(local_lm):
    """`LocalSchemaAdapter` sends the output schema inside `json_object`; the server constrains decoding to it."""
    from dspy_rlm import LocalSchemaAdapter

    lm = dspy.LM("openai/smollm2", api_base=BASE, api_key="local-server", max_tokens=64, temperature=0.0,
                 cache=False, num_retries=0)
    predict = dspy.Predict("question -> answer: str, confidence: int")
    with dspy.context(lm=lm, adapter=LocalSchemaAdapter()):
        results = [predict(question=f"What is {i} + 2?") for i in range(5)]
    assert all(isinstance(r.answer, str) and isinstance(r.confidence, int) for r in results)
    assert all("schema" in call["kwargs"]["response_format"] for call in lm.history)
