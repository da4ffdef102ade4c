"""Saved state: what a program carries (instructions, demos) and what it must not (per-instance limits).

A state holds what an optimizer tuned. The limits of the RLM it is loaded into
(`max_llm_calls`, `max_prompt_chars`, `max_output_chars`) reach the model in each
call's `iteration` input, so a loaded program never quotes the numbers of the one
that saved it; a state saved for other fields, outputs or tools is refused by name.
"""

from __future__ import annotations

import threading

import dspy
import pytest

from dspy_rlm import RLM, IsolatedSandbox, ScriptedLM
from dspy_rlm.lms.simulated.lm import SimulatedLM
from tests.helpers import steps


def search(pattern: str) -> list[str]:
    """Find lines."""
    return [pattern]


def fetch(url: str) -> str:
    """Fetch a page."""
    return url


def test_the_instructions_do_not_depend_on_the_limits():
    small = RLM("context, query -> answer", max_llm_calls=24, max_prompt_chars=1_234, max_output_chars=567)
    large = RLM("context, query -> answer", max_llm_calls=50)
    assert small.generate_code.signature.instructions == large.generate_code.signature.instructions
    assert "24" not in small.generate_code.signature.instructions


def test_a_loaded_program_tells_the_model_the_limits_of_the_rlm_it_was_loaded_into(tmp_path):
    saved = RLM("context, query -> answer", max_llm_calls=24, max_prompt_chars=1_234, max_output_chars=567)
    saved.save(str(tmp_path / "state.json"))
    fresh = RLM("context, query -> answer", max_llm_calls=50, max_prompt_chars=9_876, max_output_chars=5_432)
    fresh.load(str(tmp_path / "state.json"))
    lm = steps("SUBMIT(answer='ok')")
    with dspy.context(lm=lm):
        assert fresh(context="x", query="q").answer == "ok"
    request = lm.requests[0]
    iteration = request.field("iteration")
    assert "sub-model calls left: 50" in iteration
    assert "9,876" in iteration and "5,432" in iteration
    for stale in ("24", "1,234", "567"):
        assert stale not in request.text


def test_a_state_saved_for_other_input_names_is_refused_by_name(tmp_path):
    RLM("context, query -> answer").save(str(tmp_path / "state.json"))
    other = RLM("context, question -> answer")
    with pytest.raises(ValueError, match=r"query.*question|question.*query") as raised:
        other.load(str(tmp_path / "state.json"))
    assert "rebuild" in str(raised.value) or "RLM(" in str(raised.value)
    # Nothing was half-loaded: the module still has its own instructions.
    assert "`question`" in other.generate_code.signature.instructions


@pytest.mark.parametrize(
    ("saved", "loading"),
    [
        (dict(signature="context -> answer"), dict(signature="context -> summary")),
        (dict(signature="context -> answer"), dict(signature="context -> answer: int")),
        (dict(signature="context -> answer", tools=[search]), dict(signature="context -> answer", tools=[fetch])),
        (dict(signature="context -> answer", tools=[search]), dict(signature="context -> answer")),
    ],
    ids=["other output", "other output type", "other tool", "tool dropped"],
)
def test_a_state_saved_for_other_outputs_or_tools_is_refused(saved, loading):
    state = RLM(**saved).dump_state()
    with pytest.raises(ValueError, match="was saved from an RLM"):
        RLM(**loading).load_state(state)


def test_a_state_for_the_same_task_loads_whatever_the_limits():
    state = RLM("context -> answer", tools=[search], max_llm_calls=3, max_iters=2).dump_state()
    fresh = RLM("context -> answer", tools=[search], max_llm_calls=40)
    fresh.load_state(state)
    assert fresh.dump_state() == state


def test_a_dspy_rlm_state_is_refused_with_an_explanation():
    state = dspy.RLM("context, query -> answer").dump_state()
    with pytest.raises(ValueError, match="dspy.RLM") as raised:
        RLM("context, query -> answer").load_state(state)
    assert "generate_action" in str(raised.value)


def test_a_state_of_another_program_names_the_missing_predictors():
    with pytest.raises(ValueError, match="generate_code"):
        RLM("context -> answer").load_state({"predict": {}})


def test_a_state_saved_before_limits_moved_out_of_the_instructions_loads_without_them():
    fresh = RLM("context, query -> answer", max_llm_calls=50)
    state = fresh.dump_state()
    for predictor in ("generate_code", "extract"):
        state[predictor].pop("rlm_task")  # states saved by earlier versions had no task record
    old = state["generate_code"]["signature"]
    old["instructions"] = ("Tuned first line.\n- `llm_query(prompt) -> str`: ask a sub-model about a piece of text "
                           "(up to about 500,000 characters per prompt).\n- `print()`: the only way to see results. "
                           "Output is truncated to 10,000 characters, head and tail.\n"
                           "You can make at most 24 sub-model calls in this run.")
    fresh.load_state(state)
    instructions = fresh.generate_code.signature.instructions
    assert instructions.startswith("Tuned first line.")
    for stale in ("24", "500,000", "10,000"):
        assert stale not in instructions


def _sub_answer(request):
    return {"response": "sub says hi"}


@pytest.mark.parametrize(
    "options",
    [
        dict(sub_lm=SimulatedLM()),
        dict(sub_lm=ScriptedLM(_sub_answer)),
        dict(sub_lm=ScriptedLM(_sub_answer), tools=[search], sandbox_factory=IsolatedSandbox),
    ],
    ids=["simulated sub-model", "scripted sub-model", "tools and a sandbox factory"],
)
def test_a_whole_program_saves_and_loads_with_its_models_and_tools(tmp_path, options):
    program = RLM("context -> answer", **options)
    program.generate_code.lm = steps("SUBMIT(answer=llm_query('hello'))")
    program.save(str(tmp_path / "program"), save_program=True)
    loaded = dspy.load(str(tmp_path / "program"), allow_pickle=True)
    result = loaded(context="x")
    assert result.usage["sub_calls"] == 1 and "ERROR" not in result.answer  # the loaded sub-model answered
    assert loaded.generate_code.signature.instructions == program.generate_code.signature.instructions


class _LockedLookup:
    """A tool holding something pickle cannot carry (a lock, as a database client would)."""

    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self, key: str) -> str:
        return key


def test_a_whole_program_that_cannot_be_pickled_names_the_part_that_cannot(tmp_path):
    program = RLM("context -> answer", tools=[dspy.Tool(_LockedLookup(), name="lookup")])
    with pytest.raises(RuntimeError, match="tool 'lookup'.*cannot be pickled.*save_program=False"):
        program.save(str(tmp_path / "program"), save_program=True)
