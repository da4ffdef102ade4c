"""Side effects behind approval: a marked tool runs only when the policy allows that call."""

from __future__ import annotations

import io

import dspy
import pytest

from dspy_rlm import RLM, Tool
from tests.helpers import steps

SEND = "print(send_mail(to='a@b.c', body='hi'))"


def _run(policy, *codes, sent=None):
    sent = [] if sent is None else sent

    def send_mail(to: str, body: str) -> str:
        """Send an e-mail."""
        sent.append((to, body))
        return f"sent to {to}"

    def word_count(text: str) -> int:
        """A pure tool: no approval needed."""
        return len(text.split())

    rlm = RLM("context -> answer", tools=[Tool(send_mail, side_effects=True), word_count], approve=policy)
    with dspy.context(lm=steps(*codes, "FINAL('done')")):
        return rlm(context="x"), sent


def test_an_allowed_call_runs_and_its_decision_is_in_the_trajectory():
    prediction, sent = _run("allow", SEND)
    assert sent == [("a@b.c", "hi")] and "sent to a@b.c" in prediction.trajectory[0]["output"]
    (decision,) = prediction.trajectory[0]["approvals"]
    assert decision["tool"] == "send_mail" and decision["allowed"] is True and decision["policy"] == "allow"
    assert "'to': 'a@b.c'" in decision["arguments"]


def test_a_denied_call_comes_back_to_the_model_as_an_observation_and_nothing_is_sent():
    prediction, sent = _run("deny", SEND)
    assert sent == []
    assert "PermissionError: send_mail(to='a@b.c', body='hi') was not approved" in prediction.trajectory[0]["output"]
    assert prediction.trajectory[0]["approvals"][0]["allowed"] is False


def test_a_host_policy_decides_per_call_with_its_arguments():
    def only_internal(request):
        return request.arguments["to"].endswith("@b.c") or f"{request.arguments['to']} is outside the company"

    prediction, sent = _run(only_internal, SEND + "\nprint(send_mail(to='x@evil.example', body='hi'))")
    assert sent == [("a@b.c", "hi")]
    decisions = prediction.trajectory[0]["approvals"]
    assert [d["allowed"] for d in decisions] == [True, False]
    assert decisions[1]["reason"] == "x@evil.example is outside the company"


@pytest.mark.parametrize("typed, allowed", [("y\n", True), ("n\n", False), ("\n", False)])
def test_ask_prompts_on_the_terminal(monkeypatch, capsys, typed, allowed):
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    prediction, sent = _run("ask", SEND)
    assert "Allow send_mail(to='a@b.c', body='hi')? [y/N]" in capsys.readouterr().err
    assert bool(sent) is allowed and prediction.trajectory[0]["approvals"][0]["allowed"] is allowed


def test_the_prompt_says_which_tools_need_approval():
    from dspy_rlm.core.tools import normalize_tools, tool_docs

    def send_mail(to: str) -> str:
        """Send an e-mail."""
        return to

    docs = tool_docs(normalize_tools([Tool(send_mail, side_effects=True), Tool(len, name="size")]))
    assert "- `send_mail(to: str) -> str`: Send an e-mail. [Has side effects: each call must be approved" in docs
    assert "size" in docs and docs.count("Has side effects") == 1


def test_pure_tools_are_never_asked_about():
    prediction, _ = _run("deny", "print(word_count('a b c'))")
    assert "3" in prediction.trajectory[0]["output"] and prediction.trajectory[0]["approvals"] == []


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="approve must be one of 'deny', 'allow', 'ask'"):
        RLM("context -> answer", approve="sometimes")


@pytest.mark.slow
def test_each_decision_is_a_span_of_the_trace(tmp_path):
    from tests.mlflow_helpers import mlflow_store, traces

    with mlflow_store(tmp_path, "approval"):
        _run("deny", SEND)
        spans = [s for s in traces()[0].data.spans if s.name == "rlm.approval"]
    assert [s.outputs["allowed"] for s in spans] == [False] and spans[0].inputs["tool"] == "send_mail"
