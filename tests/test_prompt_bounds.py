"""Every text that enters a prompt is bounded, and cut with a marker the transcript reads back.

What the model writes (names of its variables, reasoning, code) and what a step prints
reach every later root prompt (`variables_info`, `repl_history`) and the extract step;
each is cut in the middle to a setting. The trajectory a call returns keeps more, up to
`settings.TRAJECTORY_TEXT_CHARS` per text.
"""

from __future__ import annotations

import dspy

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.core.bounds import NAME_CHARS, cut_name
from dspy_rlm.core.transcript import (
    DESCRIPTION_CHARS, RECORD_ERROR_CHARS, Step, SubQueryRecord, describe_value, extract_code, format_history,
    format_variables, parse_history, parse_variables,
)
from dspy_rlm.errors import CodeProblem
from dspy_rlm.lms.simulated.root import read_transcript
from dspy_rlm.sandbox import truncate_middle
from dspy_rlm.settings import HISTORY_CODE_CHARS, HISTORY_REASONING_CHARS, TRAJECTORY_TEXT_CHARS
from tests.helpers import step

LONG = 100_000


# ---- variables_info -------------------------------------------------------------------------------

def test_long_created_names_are_cut_with_a_marker_and_read_back_as_shown():
    created = [f"v{i}_" + "x" * LONG for i in range(100)]
    text = format_variables({"context": "abc"}, {}, created)
    assert len(text) < 100 * (NAME_CHARS + 40)
    assert [v.name for v in parse_variables(text) if not v.is_input] == [cut_name(name) for name in created]
    assert cut_name("total") == "total"
    assert cut_name(created[7]).startswith("v7_x") and f"{len(created[7]) - NAME_CHARS:,}" in cut_name(created[7])


def test_a_long_type_name_and_description_are_cut():
    huge_type = type("T" * LONG, (), {})
    text = describe_value("thing", huge_type(), "d" * LONG)
    assert len(text) < NAME_CHARS + DESCRIPTION_CHARS + 2_000
    (entry,) = parse_variables(text)
    assert entry.type_name == cut_name(huge_type.__name__)
    assert entry.description == truncate_middle("d" * LONG, DESCRIPTION_CHARS)


def test_a_preview_renders_only_its_head():
    """A dict of 100,000 entries is not encoded in full for a 300-character preview, on every step."""
    rendered = []

    class Counted:
        def __str__(self) -> str:
            rendered.append(1)
            return "item"

    describe_value("meta", {f"k{i}": Counted() for i in range(LONG)})
    assert 0 < len(rendered) < 1_000


# ---- repl_history ---------------------------------------------------------------------------------

def test_long_reasoning_and_code_are_cut_in_the_history_and_read_back_as_shown():
    reasoning, code = "why " * 1_250_000, "x = 1\n" + "# pad\n" * 200_000
    steps = [Step(iteration=1, reasoning=reasoning, code=code, output="ok"), Step(iteration=2, code="y", output="2")]
    history = format_history(steps, 10_000)
    assert len(history) < HISTORY_REASONING_CHARS + HISTORY_CODE_CHARS + 1_000
    first, second = parse_history(history)
    assert first.reasoning == truncate_middle(reasoning, HISTORY_REASONING_CHARS)
    assert first.code == truncate_middle(code, HISTORY_CODE_CHARS)  # the marker counts from the full text
    assert (first.output, second.code, second.output) == ("ok", "y", "2")


def test_a_long_output_is_counted_from_its_full_length():
    output = "line\n" * LONG
    (entry,) = parse_history(format_history([Step(iteration=1, code="print()", output=output)], 1_000))
    assert entry.output == truncate_middle(output, 1_000) and entry.output_chars == len(output)
    assert entry.truncated


# ---- the trajectory and the step's records ---------------------------------------------------------

def test_the_trajectory_keeps_each_text_up_to_its_setting():
    kept = Step(iteration=1, reasoning="r" * (50 * 10**6), code="c" * (TRAJECTORY_TEXT_CHARS + 1), output="o")
    assert kept.reasoning == truncate_middle("r" * (50 * 10**6), TRAJECTORY_TEXT_CHARS)
    assert kept.code == truncate_middle("c" * (TRAJECTORY_TEXT_CHARS + 1), TRAJECTORY_TEXT_CHARS)
    assert kept.output == "o" and kept.model_dump()["reasoning"] == kept.reasoning


def test_a_sub_query_error_is_cut():
    record = SubQueryRecord(prompt_chars=1, response_chars=0, seconds=0.1, error="ValueError: " + "e" * LONG)
    assert record.error == truncate_middle("ValueError: " + "e" * LONG, RECORD_ERROR_CHARS)


def test_a_code_fence_in_another_language_is_named_briefly():
    try:
        extract_code("```" + "a" * LONG + "\nprint(1)\n```")
    except CodeProblem as problem:
        assert len(str(problem)) < NAME_CHARS + 300
    else:
        raise AssertionError("a fence in another language must be refused")


# ---- a whole call ----------------------------------------------------------------------------------

def test_every_later_prompt_is_bounded_whatever_the_model_writes():
    """Huge names, a 1 MB code block and a 5 MB completion: later prompts, the extract step included, stay small."""
    lm = ScriptedLM([
        step("for i in range(100):\n    globals()[f'v{i}_' + 'x' * 100_000] = i"),
        step("y = 1\n# " + "p" * 1_000_000),
        step("z = 2", reasoning="why " * 1_250_000),
        {"answer": "extracted"},
    ])
    with dspy.context(lm=lm):
        result = RLM("context -> answer", max_iters=3)(context="abc")
    assert result.answer == "extracted" and len(lm.requests) == 4
    for request in lm.requests[1:]:
        assert len(request.field("variables_info")) < 100 * (NAME_CHARS + 40) + 1_000
        assert len(request.field("repl_history")) < 3 * (HISTORY_REASONING_CHARS + HISTORY_CODE_CHARS + 1_000)
    transcript = read_transcript(lm.requests[2])
    assert list(transcript.variables) == ["context"] and len(transcript.steps) == 2
    assert transcript.steps[1].code == truncate_middle("y = 1\n# " + "p" * 1_000_000, HISTORY_CODE_CHARS)
    assert all(len(text) <= TRAJECTORY_TEXT_CHARS + 100 for s in result.trajectory for text in
               (s["reasoning"], s["code"], s["output"]))
