"""Sessions, history compaction, named sub-models and answer validation."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM, SandboxClosed, ScriptedLM
from dspy_rlm.core.compaction import FULL_HISTORY, Compacted, format_compacted, split_compacted
from dspy_rlm.core.transcript import parse_history, parse_iteration
from tests.helpers import step, steps


def by_history(*step_lists: list[str]) -> ScriptedLM:
    """A root model whose k-th call of a session (told apart by `session_history`) writes `step_lists[k]`."""

    def answer(request):
        info, history = request.field("variables_info") or "", request.field("repl_history") or ""
        turn = info.count('"turn":') if "session_history" in info else 0
        codes = step_lists[turn]
        return step(codes[min(history.count("=== Step "), len(codes) - 1)])

    return ScriptedLM(answer, model="scripted/session")


# -- sessions ---------------------------------------------------------------------------


def test_a_session_keeps_one_sandbox_over_three_calls():
    lm = by_history(
        ["total = len(context)\nSUBMIT(answer=str(total))"],
        ["total += len(context)\nSUBMIT(answer=str(total))"],
        ["SUBMIT(answer=str([total, context_1, query_2, session_history[1]['outputs']['answer']]))"],
    )
    rlm = RLM("context, query -> answer")
    with dspy.context(lm=lm), rlm.session() as chat:
        first = chat(context="abc", query="q1")
        second = chat(context="defgh", query="q2")
        third = chat(context="x", query="q3")
    assert (first.answer, second.answer) == ("3", "8")
    assert third.answer == "[8, 'abc', 'q2', '8']"  # variables of earlier turns, their inputs and outputs
    assert len(chat.turns) == 3
    with pytest.raises(SandboxClosed, match="rlm.session"):
        chat(context="y", query="q4")


def test_a_session_call_shows_the_earlier_turns_to_the_model():
    lm = by_history(["SUBMIT(answer='one')"], ["SUBMIT(answer='two')"])
    rlm = RLM("context, query -> answer")
    with dspy.context(lm=lm), rlm.session() as chat:
        chat(context="a", query="first")
        chat(context="b", query="second")
    info = lm.requests[-1].field("variables_info")
    assert "Variable: `context_1`" in info and "Variable: `query_1`" in info and "Variable: `session_history`" in info


def test_each_session_call_has_its_own_budget():
    lm = by_history(["SUBMIT(answer=llm_query('a'))"], ["SUBMIT(answer=llm_query('b'))"])
    sub = ScriptedLM(lambda r: {"response": r.field("prompt")}, model="scripted/sub")
    rlm = RLM("context -> answer", max_llm_calls=1, sub_lm=sub)
    with dspy.context(lm=lm), rlm.session() as chat:
        assert [chat(context="x").answer, chat(context="y").answer] == ["a", "b"]


def test_a_dspy_history_input_is_filled_with_the_earlier_turns():
    lm = by_history(["SUBMIT(answer='Paris')"], ["SUBMIT(answer=str(history['messages']))"])
    rlm = RLM("history: dspy.History, question -> answer")
    with dspy.context(lm=lm), rlm.session() as chat:
        chat(question="Capital of France?")
        second = chat(question="And its population?")
    assert second.answer == "[{'question': 'Capital of France?', 'answer': 'Paris'}]"


def test_separate_calls_share_nothing():
    lm = steps("kept = 1\nSUBMIT(answer='a')", "SUBMIT(answer=str('kept' in globals()))")
    rlm = RLM("context -> answer")
    with dspy.context(lm=lm):
        rlm(context="x")
        assert rlm(context="y").answer == "False"


# -- compaction ---------------------------------------------------------------------------


def test_compaction_summarizes_older_steps_and_keeps_their_full_text_in_the_sandbox():
    printing = "print('x' * 3000)"

    def answer(request):
        if "summary" in request.output_fields:
            return {"summary": "Printed many x."}
        if parse_iteration(request.field("iteration")).iteration >= 5:
            return step(f"SUBMIT(answer=str(len({FULL_HISTORY})))")
        return step(printing)

    lm = ScriptedLM(answer, model="scripted/compact")
    rlm = RLM("context -> answer", compact_at=0.5, context_window=2_500, max_iters=8)
    assert "compact" in dict(rlm.named_predictors())
    with dspy.context(lm=lm):
        result = rlm(context="c")
    summaries = [r for r in lm.requests if "summary" in r.output_fields]
    assert summaries, "compaction never ran"
    shown = lm.requests[-1].field("repl_history")
    compacted, rest = split_compacted(shown)
    assert compacted is not None and compacted.summary == "Printed many x." and "x" * 3000 in compacted_text(result)
    assert int(result.answer) == compacted.full_chars and parse_history(rest)  # the later steps are still shown


def compacted_text(result) -> str:
    return "".join(step["output"] for step in result.trajectory)


def test_without_compact_at_there_is_no_compact_predictor():
    assert "compact" not in dict(RLM("context -> answer").named_predictors())
    with pytest.raises(ValueError, match="compact_at must be a share"):
        RLM("context -> answer", compact_at=2)


def test_the_summary_block_reads_back():
    block = Compacted(1, 4, "did things", 12_345)
    text = format_compacted(block, "=== Step 5 ===\nCode:\n```python\nx\n```\nOutput (1 chars):\n1")
    again, rest = split_compacted(text)
    assert again == block and [e.iteration for e in parse_history(rest)] == [5]
    assert split_compacted("=== Step 1 ===\n") == (None, "=== Step 1 ===\n")


# -- named sub-models ---------------------------------------------------------------------------


def named(model: str) -> ScriptedLM:
    return ScriptedLM(lambda r: {"response": f"{model}:{r.field('prompt')}"}, model=f"scripted/{model}")


def test_llm_query_picks_a_named_sub_model_and_usage_is_counted_per_name():
    lm = steps("a = llm_query('q', model='fast')\nb = llm_query_batched(['r', 's'], model='strong')\n"
               "c = llm_query('t')\nSUBMIT(answer=str([a, b, c]))")
    rlm = RLM("context -> answer", sub_lm=named("default"), sub_lms={"fast": named("fast"), "strong": named("strong")})
    with dspy.context(lm=lm):
        result = rlm(context="x")
    assert result.answer == "['fast:q', ['strong:r', 'strong:s'], 'default:t']"
    assert result.usage["by_sub_model"]["fast"]["calls"] == 1 and result.usage["by_sub_model"]["strong"]["calls"] == 2
    assert [q["model"] for q in result.trajectory[0]["sub_queries"]].count("strong") == 2
    assert '"fast", "strong"' in rlm.generate_code.signature.instructions


def test_an_unknown_sub_model_name_lists_the_names():
    lm = steps("llm_query('q', model='fsat')", "SUBMIT(answer='x')")
    rlm = RLM("context -> answer", sub_lms={"fast": named("fast"), "strong": named("strong")})
    with dspy.context(lm=lm):
        output = rlm(context="x").trajectory[0]["output"]
    assert "unknown sub-model; this RLM's sub-models are 'fast', 'strong'" in output
    with pytest.raises(ValueError, match="non-empty strings"):
        RLM("context -> answer", sub_lms={"": named("x")})


# -- validation ---------------------------------------------------------------------------


def test_a_validator_message_goes_back_to_the_model_and_the_next_submission_passes():
    lm = steps("SUBMIT(answer='maybe')", "SUBMIT(answer='yes')")
    checked = []

    def validate(outputs):
        checked.append(outputs)
        return None if outputs["answer"] in ("yes", "no") else "answer must be yes or no"

    with dspy.context(lm=lm):
        result = RLM("context -> answer", validate=validate)(context="x")
    assert result.answer == "yes" and checked == [{"answer": "maybe"}, {"answer": "yes"}]
    assert result.trajectory[0]["error"] == "output"
    assert "not accepted: answer must be yes or no" in result.trajectory[0]["output"]


def test_a_failing_validator_is_reported_not_raised():
    lm = steps("SUBMIT(answer='a')", "SUBMIT(answer='b')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", validate=lambda o: 1 / 0, max_iters=2, on_limit="return")(context="x")
    assert "the validator failed on this submission (ZeroDivisionError" in result.trajectory[0]["output"]
    with pytest.raises(TypeError, match="validate must be a function"):
        RLM("context -> answer", validate="yes")


def test_a_session_works_in_a_worker_process_too():
    lm = by_history(["kept = context\nSUBMIT(answer='one')"], ["SUBMIT(answer=kept + context + context_1)"])
    rlm = RLM("context -> answer", isolate_process=True)
    with dspy.context(lm=lm), rlm.session() as chat:
        chat(context="a")
        assert chat(context="b").answer == "aba"


def test_call_options_are_not_kept_as_inputs_of_a_turn():
    from dspy_rlm import Sandbox

    lm = by_history(["SUBMIT(answer='one')"], ["SUBMIT(answer=str(sorted(k for k in globals() if k.endswith('_1'))))"])
    rlm = RLM("context -> answer")
    with dspy.context(lm=lm), rlm.session() as chat:
        chat(context="a", sandbox_factory=Sandbox)
        assert chat(context="b").answer == "['context_1']"


def test_a_rejected_answer_is_not_returned_at_a_limit():
    lm = steps("SUBMIT(answer='maybe')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", validate=lambda o: "say yes or no", max_iters=1, on_limit="return")(context="x")
    assert result.answer is None and result.limit == "iterations"


def test_a_state_saved_without_compaction_loads_into_an_rlm_with_it(tmp_path):
    RLM("context -> answer").save(str(tmp_path / "plain.json"))
    loaded = RLM("context -> answer", compact_at=0.5)
    loaded.load(str(tmp_path / "plain.json"))
    assert "compact" in dict(loaded.named_predictors())
