"""Token caps that OpenAI-compatible local servers honour (`dspy_rlm.core.local_models`).

DSPy's default engine sends an `openai/...` model's `max_tokens` as `max_completion_tokens`, which
llama.cpp's server ignores; for an LM with its own `api_base`, each RLM call also sends the cap as
`max_tokens` in the body. `tests/real_model` checks the effect on a real llama.cpp server.
"""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM, SimulatedLM, settings
from dspy_rlm.core.local_models import token_cap_config
from dspy_rlm.lms.simulated.server import serve_simulated
from dspy_rlm.programs.families import get_family
from tests.helpers import steps

LOCAL = "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("lm, expected", [
    (dspy.LM("openai/local", api_base=LOCAL, api_key="k", max_tokens=40), {"extra_body": {"max_tokens": 40}}),
    (dspy.LM("openai/local", api_base=LOCAL, api_key="k", max_tokens=40, extra_body={"top_k": 5}),
     {"extra_body": {"top_k": 5, "max_tokens": 40}}),
    (dspy.LM("openai/local", api_base=LOCAL, api_key="k", max_tokens=40, engine="litellm"), {}),  # LiteLLM sends it
    (dspy.LM("openai/gpt-4o-mini", api_key="k", max_tokens=40), {}),  # a hosted provider: left as it is
    (dspy.LM("openai/local", api_base=LOCAL, api_key="k"), {}),  # no cap to send
    (SimulatedLM(None), {}),
])
def test_the_cap_goes_in_the_body_only_for_local_endpoints_on_the_default_engine(lm, expected):
    assert token_cap_config(lm) == expected


def test_it_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(settings, "LOCAL_TOKEN_CAP", False)
    assert token_cap_config(dspy.LM("openai/local", api_base=LOCAL, api_key="k", max_tokens=40)) == {}


def test_every_root_and_sub_model_call_of_an_rlm_carries_the_cap():
    family = get_family("niah")
    task = family.make_task(2048, 0)
    with serve_simulated(SimulatedLM(family.world(), seed=0, error_rate=0.0, strategy="batched")) as server:
        sub = dspy.LM("openai/sim-niah", api_base=server.base_url, api_key="sim", max_tokens=64, cache=False)
        root = dspy.LM("openai/sim-niah", api_base=server.base_url, api_key="sim", max_tokens=2000, cache=False)
        with dspy.context(lm=root):
            RLM(family.signature, max_iters=4, sub_lm=sub)(context=task.context, query=task.query)
    assert root.history and all(call["kwargs"].get("extra_body") == {"max_tokens": 2000} for call in root.history)
    assert sub.history and all(call["kwargs"].get("extra_body") == {"max_tokens": 64} for call in sub.history)


def test_a_scripted_model_is_unaffected():
    with dspy.context(lm=steps("SUBMIT(answer='ok')")):
        assert RLM("context -> answer")(context="x").answer == "ok"


def test_the_schema_adapter_sends_the_output_schema_inside_json_object():
    from dspy_rlm import LocalSchemaAdapter

    lm = dspy.LM("openai/local", api_base=LOCAL, api_key="k")
    kwargs: dict = {}
    LocalSchemaAdapter()._prepare_response_format(lm, kwargs, dspy.Signature("question -> answer: str, n: int"))
    fmt = kwargs["response_format"]
    assert fmt["type"] == "json_object" and set(fmt["schema"]["properties"]) == {"answer", "n"}
    assert fmt["schema"]["properties"]["n"]["type"] == "integer"
