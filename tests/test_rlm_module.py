"""The RLM module: predictors, termination, typed outputs, trajectory and usage."""

from __future__ import annotations

from typing import Literal

import dspy
import pydantic
import pytest

from dspy_rlm import RLM, ScriptedLM
from tests.helpers import step, steps


def test_predictors_are_named_attributes_for_optimizers():
    rlm = RLM("context, query -> answer")
    assert [name for name, _ in rlm.named_predictors()] == ["generate_code", "sub_query", "extract"]
    code_fields = rlm.generate_code.signature
    assert list(code_fields.input_fields) == ["variables_info", "repl_history", "iteration"]
    assert list(code_fields.output_fields) == ["reasoning", "code"]
    assert list(rlm.extract.signature.output_fields) == ["answer"]


def test_submit_ends_the_run_with_the_outputs():
    lm = steps("x = len(context)\nprint(x)", "SUBMIT(answer=str(x))")
    with dspy.context(lm=lm):
        result = RLM("context, query -> answer")(context="abcdef", query="how long?")
    assert result.answer == "6"
    assert result.trajectory[0]["output"].strip() == "6"
    assert len(result.trajectory) == 2


def test_final_and_final_var_work_for_a_single_output():
    with dspy.context(lm=steps("FINAL(context.upper())")):
        assert RLM("context -> answer")(context="abc").answer == "ABC"
    with dspy.context(lm=steps("result = context[::-1]\nFINAL_VAR('result')")):
        assert RLM("context -> answer")(context="abc").answer == "cba"


def test_final_is_refused_when_there_are_several_outputs():
    lm = steps("FINAL(1)", "SUBMIT(a=1, b=2)")
    with dspy.context(lm=lm):
        result = RLM("context -> a: int, b: int")(context="x")
    assert "FINAL(value) works only when there is one output" in result.trajectory[0]["output"]
    assert (result.a, result.b) == (1, 2)


def test_submit_accepts_positional_values_and_reports_missing_ones():
    lm = steps("SUBMIT(1)", "SUBMIT(1, 'two')")
    with dspy.context(lm=lm):
        result = RLM("context -> a: int, b: str")(context="x")
    assert "missing b" in result.trajectory[0]["output"]
    assert (result.a, result.b) == (1, "two")


class Item(pydantic.BaseModel):
    name: str
    qty: int


@pytest.mark.parametrize(
    ("signature", "code", "expected"),
    [
        ("context -> n: int", "SUBMIT(n='42')", 42),
        ("context -> x: float", "SUBMIT(x=2)", 2.0),
        ("context -> ok: bool", "SUBMIT(ok='true')", True),
        ("context -> xs: list[int]", "SUBMIT(xs=('1', 2))", [1, 2]),
        ("context -> d: dict[str, int]", "SUBMIT(d={1: 2})", {"1": 2}),
        ("context -> s: str", "SUBMIT(s=7)", "7"),
    ],
)
def test_outputs_are_coerced_to_the_signature_types(signature, code, expected):
    with dspy.context(lm=steps(code)):
        result = RLM(signature)(context="x")
    name = signature.split("->")[1].split(":")[0].strip()
    assert result[name] == expected


def test_literal_and_pydantic_outputs_are_validated_and_a_bad_value_gets_another_try():
    class Task(dspy.Signature):
        context: str = dspy.InputField()
        verdict: Literal["yes", "no"] = dspy.OutputField()
        items: list[Item] = dspy.OutputField()

    lm = steps("SUBMIT(verdict='maybe', items=[])", "SUBMIT(verdict='yes', items=[{'name': 'a', 'qty': '2'}])")
    with dspy.context(lm=lm):
        result = RLM(Task)(context="x")
    assert "[Type Error] verdict" in result.trajectory[0]["output"]
    assert result.verdict == "yes"
    assert result["items"] == [Item(name="a", qty=2)]


def test_values_json_cannot_hold_still_reach_validation():
    lm = steps("import datetime\nSUBMIT(answer={3, 1, 2}, when=datetime.date(2024, 5, 1))")
    with dspy.context(lm=lm):
        result = RLM("context -> answer: list[int], when: str")(context="x")
    assert sorted(result.answer) == [1, 2, 3]
    assert result.when == "2024-05-01"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "had no code"),
        ("```python\n```", "was empty"),
        ("```bash\nls -la\n```", "only Python runs here"),
    ],
)
def test_answers_without_python_get_an_observation_and_the_loop_continues(raw, message):
    lm = ScriptedLM([{"reasoning": "r", "code": raw}, step("SUBMIT(answer='done')")])
    with dspy.context(lm=lm):
        result = RLM("context -> answer")(context="x")
    assert message in result.trajectory[0]["output"]
    assert result.answer == "done"


def test_extract_answers_when_iterations_run_out():
    lm = ScriptedLM([step("print(1)"), step("print(2)"), {"answer": "from history"}])
    with dspy.context(lm=lm):
        result = RLM("context -> answer", max_iters=2)(context="x")
    assert result.answer == "from history"
    assert result.final_reasoning == "Extract forced final output"
    assert "=== Step 2 ===" in lm.requests[-1].text


def test_trajectory_records_reasoning_code_output_error_and_seconds():
    lm = steps("print('hi')\n1/0", "SUBMIT(answer='x')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer")(context="x")
    first = result.trajectory[0]
    assert first["reasoning"] == "step 1"
    assert first["code"].startswith("print('hi')")
    assert "hi" in first["output"] and "ZeroDivisionError" in first["output"]
    assert first["error"] == "exception"
    assert first["seconds"] >= 0
    assert first["sub_queries"] == []


def test_usage_counts_root_and_sub_calls_and_tokens():
    sub = ScriptedLM(lambda r: {"response": "ok"}, model="scripted/sub")
    lm = steps("a = llm_query('hi')\nb = llm_query_batched(['x', 'y'])", "SUBMIT(answer=a + ''.join(b))")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", sub_lm=sub)(context="x")
    usage = result.usage
    assert result.answer == "okokok"
    assert (usage["root_calls"], usage["sub_calls"]) == (2, 3)
    assert usage["root_tokens"]["total_tokens"] > 0 and usage["sub_tokens"]["total_tokens"] > 0
    assert set(usage["by_model"]) == {"scripted/lm", "scripted/sub"}
    assert usage["seconds"] >= usage["sandbox_seconds"] >= 0


def test_usage_reaches_dspy_usage_tracking():
    lm = steps("SUBMIT(answer='x')")
    with dspy.context(lm=lm, track_usage=True):
        result = RLM("context -> answer")(context="x")
    assert result.get_lm_usage()["scripted/lm"]["total_tokens"] > 0
