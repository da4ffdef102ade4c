"""Inputs live in the sandbox: the root model sees only names, types, lengths and previews."""

from __future__ import annotations

import dspy
import pydantic

from dspy_rlm import RLM
from tests.helpers import steps

MARKER = "ZEBRA-7731-UNIQUE-MARKER"


def test_the_context_never_appears_in_any_root_prompt():
    filler = "lorem ipsum dolor sit amet " * 200_000  # about 5.4 MB
    middle = len(filler) // 2
    context = filler[:middle] + MARKER + filler[middle:]
    lm = steps(
        "i = context.find('ZEBRA')\nprint(i > 1000)",
        "print(context[i + 6:i + 10])",
        "SUBMIT(answer=context[i:i+24])",
    )
    with dspy.context(lm=lm):
        result = RLM("context, query -> answer")(context=context, query="find the marker")
    assert result.answer == MARKER
    assert len(lm.requests) == 3
    for request in lm.requests:
        assert MARKER not in request.text
        assert len(request.text) < 20_000
        assert "Length: " + f"{len(context):,}" in request.text


class Doc(pydantic.BaseModel):
    title: str
    year: int


class Structured(dspy.Signature):
    docs: list[dict] = dspy.InputField()
    meta: dict = dspy.InputField()
    n: int = dspy.InputField()
    doc: Doc = dspy.InputField()
    answer: str = dspy.OutputField()


def test_structured_inputs_arrive_as_python_objects():
    code = "SUBMIT(answer=f\"{type(docs).__name__}:{docs[1]['title']}:{meta['k'][0]}:{n + 1}:{doc['year']}\")"
    with dspy.context(lm=steps(code)):
        result = RLM(Structured)(
            docs=[{"title": "a"}, {"title": "b"}], meta={"k": [1.5]}, n=41, doc=Doc(title="t", year=1999)
        )
    assert result.answer == "list:b:1.5:42:1999"


def test_variables_created_by_the_model_persist_and_are_listed_for_it():
    lm = steps("total = 0", "total += len(context)\nhelper = [1, 2]", "SUBMIT(answer=str(total))")
    with dspy.context(lm=lm):
        result = RLM("context -> answer")(context="abcd")
    assert result.answer == "4"
    assert "total" in lm.requests[1].field("variables_info")
    assert "helper" in lm.requests[2].field("variables_info")


def test_the_model_sees_truncated_output_with_head_and_tail():
    lm = steps("print('A' * 50_000 + 'END')", "SUBMIT(answer='x')")
    with dspy.context(lm=lm):
        RLM("context -> answer", max_output_chars=1_000)(context="x")
    history = lm.requests[1].field("repl_history")
    assert "END" in history and "characters cut" in history
    assert len(history) < 5_000
