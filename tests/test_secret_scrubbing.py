"""Keys the host holds never cross into the sandbox, a prompt, a trajectory, a log line or an error.

A provider may echo the `Authorization` header in its 401 reply (the simulated server's `401`
fault does); the key must then be scrubbed from every text the host passes on.
"""

from __future__ import annotations

import logging

import dspy
import pytest

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.core import secrets
from dspy_rlm.errors import LMFailure
from dspy_rlm.lms.simulated.server import serve_simulated
from tests.helpers import step

KEY = "sk-scrub-me-0123456789abcdef"
OTHER_KEY = "zq-0123456789-not-key-shaped"  # found only by value, not by shape


class ServedScript(ScriptedLM):
    """A ScriptedLM the HTTP server answers from."""

    def complete(self, request):
        return self._engine_spec.complete(request)


def served_lm(server, key: str = KEY) -> dspy.LM:
    return dspy.LM("openai/served", api_base=server.base_url, api_key=key, num_retries=0, cache=False)


# ---- the scrubber ----

def test_scrub_replaces_the_values_of_remembered_lm_settings():
    lm = dspy.LM("openai/x", api_key=OTHER_KEY, headers={"Cookie": "session=cookie-value-123"},
                 api_base="http://h/v1?api-key=query-secret-123&api-version=2024-06-01")
    secrets.remember_lms(lm)
    text = f"key {OTHER_KEY}, cookie cookie-value-123, query query-secret-123, version 2024-06-01"
    assert secrets.scrub(text) == "key [REDACTED], cookie [REDACTED], query [REDACTED], version 2024-06-01"


def test_scrub_replaces_environment_keys_and_credential_shaped_strings(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "env-token-value-42")
    monkeypatch.setenv("SOME_SERVICE_URL", "http://not-a-secret.example")
    text = "token env-token-value-42 at http://not-a-secret.example; Authorization: Bearer abc.def-123456"
    assert secrets.scrub(text) == ("token [REDACTED] at http://not-a-secret.example; "
                                   "Authorization: Bearer [REDACTED]")


def test_short_values_are_not_scrubbed_by_value():
    secrets.remember_lms(dspy.LM("openai/x", api_key="sim"))
    assert secrets.scrub("the simulated model") == "the simulated model"


# ---- at the boundaries of a call ----

def test_a_401_echoing_the_key_never_reaches_the_guest_the_trajectory_or_the_error(caplog):
    caplog.set_level(logging.DEBUG)
    code = "try:\n    llm_query('hello')\nexcept Exception as e:\n    print('guest saw:', e)"
    root = ScriptedLM([step(code), step("SUBMIT(answer='x')")])
    with serve_simulated(ServedScript(lambda r: {"response": "fine"}), faults=["401"] * 5) as server:
        with dspy.context(lm=root), pytest.raises(LMFailure) as raised:
            RLM("context -> answer", sub_lm=served_lm(server))(context="c")
    failure = raised.value
    assert "guest saw: llm_query: LMAuthError" in failure.trajectory[0]["output"]  # the error did reach the code
    everything = f"{failure}\n{failure.trajectory}\n{failure.__cause__}\n{caplog.text}"
    assert KEY not in everything and "[REDACTED]" in failure.trajectory[0]["output"]


def test_the_root_models_401_gives_an_LMFailure_without_the_key():
    with serve_simulated(ServedScript([step("SUBMIT(answer='x')")]), faults=["401"]) as server:
        with dspy.context(lm=served_lm(server, OTHER_KEY)), pytest.raises(LMFailure, match="LMAuthError") as raised:
            RLM("context -> answer")(context="c")
    assert OTHER_KEY not in str(raised.value)


def test_a_tool_error_holding_an_environment_key_reaches_the_guest_scrubbed(monkeypatch):
    monkeypatch.setenv("BILLING_API_KEY", "billing-key-987654321")

    def charge(amount: int) -> str:
        """Charge an amount."""
        raise PermissionError("denied for key billing-key-987654321")

    code = "try:\n    charge(3)\nexcept Exception as e:\n    print('guest saw:', e)\nSUBMIT(answer='x')"
    with dspy.context(lm=ScriptedLM([step(code)])):
        result = RLM("context -> answer", tools=[charge])(context="c")
    output = result.trajectory[0]["output"]
    assert "guest saw: charge: PermissionError: denied for key [REDACTED]" in output
    assert "billing-key-987654321" not in output


def test_batched_error_slots_are_scrubbed():
    code = "print(llm_query_batched(['a', 'b']))\nSUBMIT(answer='x')"

    def sub(request):
        raise RuntimeError(f"upstream said: Authorization: Bearer {KEY}")

    with dspy.context(lm=ScriptedLM([step(code)])):
        result = RLM("context -> answer", sub_lm=ScriptedLM(sub, model="scripted/sub"))(context="c")
    first = result.trajectory[0]
    assert first["output"].count("upstream said: Authorization: Bearer [REDACTED]") == 2  # both slots
    assert KEY not in str(first)


def test_a_chained_cause_holding_a_key_is_replaced_even_when_the_outer_error_is_clean():
    try:
        try:
            raise RuntimeError(f"upstream said: Authorization: Bearer {KEY}")
        except RuntimeError as inner:
            raise ValueError("the request failed") from inner
    except ValueError as outer:
        error, clean = outer, secrets.scrubbed(outer)
    assert clean is not error and type(clean).__name__ == "ValueError" and str(clean) == "the request failed"
    assert clean.__cause__ is None and clean.__context__ is None


def test_optimizes_model_check_names_the_failure_without_the_key():
    from dspy_rlm.optimizers.output import check_models

    with serve_simulated(ServedScript(lambda r: {"response": "fine"}), faults=["401"]) as server:
        with pytest.raises(LMFailure, match="cannot be called") as raised:
            check_models({"root": served_lm(server, OTHER_KEY)})
    chained = f"{raised.value}\n{raised.value.__cause__}\n{getattr(raised.value.__cause__, '__cause__', '')}"
    assert OTHER_KEY not in chained
