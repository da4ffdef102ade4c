"""Every span of a trace holding an RLM call can be stored, and holds no secret.

A lone surrogate (`"\\ud800"`, which model code can write) cannot be encoded as UTF-8: one in any
span value used to make MLflow drop the whole trace ("Failed to send trace"), leaving it in
progress. A key echoed in a provider's error used to reach the exception events of DSPy's spans.
"""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.errors import LMFailure
from dspy_rlm.lms.simulated.server import serve_simulated
from dspy_rlm.observability.tracing import sanitize
from tests.helpers import step
from tests.mlflow_helpers import mlflow_store, spans_named, traces

KEY = "sk-trace-leak-0123456789abcdef"


class ServedScript(ScriptedLM):
    def complete(self, request):
        return self._engine_spec.complete(request)


def test_sanitize_replaces_lone_surrogates_and_joins_pairs():
    assert sanitize({"a": ["x\ud800y", ("\ud83d\ude00",)], "n": 3}) == {"a": ["x\ufffdy", ["\U0001f600"]], "n": 3}
    assert sanitize("plain text") == "plain text"


def test_a_lone_surrogate_in_a_submission_and_an_answer_keeps_the_trace(tmp_path):
    code = "x = llm_query('hi')\nSUBMIT(answer='a\\ud800b' + x)"
    sub = ScriptedLM(lambda request: {"response": "ok\udfff"}, model="scripted/sub")
    with mlflow_store(tmp_path, "surrogates"):
        with dspy.context(lm=ScriptedLM([step(code)])):
            result = RLM("context -> answer", sub_lm=sub)(context="c")
        (trace,) = traces()
    assert result.answer == "a\ud800bok\udfff"  # the caller gets what the code submitted
    assert trace.info.state.value == "OK"
    assert spans_named(trace, "llm_query") and all(span.outputs is not None for span in spans_named(trace, "llm_query"))
    assert "\ufffd" in str(trace.data.spans[0].outputs)


def test_a_key_echoed_by_a_401_is_in_no_span_and_no_stored_file(tmp_path):
    code = "try:\n    llm_query('hello')\nexcept Exception as e:\n    print(e)"
    root = ScriptedLM([step(code), step("SUBMIT(answer='x')")])
    with mlflow_store(tmp_path, "keys"):
        with serve_simulated(ServedScript(lambda request: {"response": "fine"}), faults=["401"] * 3) as server:
            sub_lm = dspy.LM("openai/served", api_base=server.base_url, api_key=KEY, num_retries=0, cache=False)
            with dspy.context(lm=root), pytest.raises(LMFailure):
                RLM("context -> answer", sub_lm=sub_lm)(context="c")
        (trace,) = traces()
        assert any(event.name == "exception" for span in trace.data.spans for event in span.events)
        assert KEY not in trace.to_json()
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaks, f"the key was written to {leaks}"
