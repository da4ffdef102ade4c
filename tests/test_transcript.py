"""The transcript owns its format: what the writers write, the parsers read back.

`dspy_rlm.core.transcript` writes the prompt text the root model reads
(`variables_info`, `repl_history`, `iteration`) and parses it again; the
simulated root model reads the prompt only through it.
"""

from __future__ import annotations

import dspy
import pydantic
import pytest

from dspy_rlm import RLM
from dspy_rlm.core.transcript import (
    MAX_LISTED_VARIABLES, NO_HISTORY, HistoryEntry, IterationInfo, Step, VariableInfo, describe_value,
    format_history, format_iteration, format_variables, inputs_section, parse_history, parse_iteration,
    parse_variables,
)
from dspy_rlm.lms.scripted import ScriptedRequest
from dspy_rlm.lms.simulated.root import read_transcript
from dspy_rlm.sandbox import truncate_middle
from tests.helpers import steps


class Answer(pydantic.BaseModel):
    text: str = "yes"


def history_of(*outputs: str, max_output_chars: int = 10_000) -> tuple[list[Step], str]:
    """Steps with these outputs (and some reasoning and code), and the history they write."""
    written = [Step(iteration=i, reasoning=f"look {i}", code=f"print({i})", output=output)
               for i, output in enumerate(outputs, 1)]
    return written, format_history(written, max_output_chars)


def root_request(variables_info: str, repl_history: str, iteration: str) -> ScriptedRequest:
    """A `generate_code` request as ChatAdapter writes it, reduced to what the simulator reads."""
    fields = {"variables_info": variables_info, "repl_history": repl_history, "iteration": iteration}
    turn = "\n\n".join(f"[[ ## {name} ## ]]\n{value}" for name, value in fields.items())
    return ScriptedRequest(system="Finish with `SUBMIT(answer=...)`.",
                           messages=(("user", turn + "\n\nRespond with the corresponding output fields."),))


# ---- variables_info -------------------------------------------------------------------------------

def test_an_entry_is_written_as_it_always_was():
    assert describe_value("context", "abc", "the text") == (
        "Variable: `context` (access it in your code)\nType: str\nDescription: the text\n"
        "Length: 3 characters\nPreview:\n```\nabc\n```")


def test_inputs_read_back_with_their_names_types_and_lengths():
    inputs = {"context": "x" * 12_345, "items": list(range(40)), "meta": {"a": 1, "b": 2},
              "count": 7, "answer": Answer()}
    parsed = parse_variables(format_variables(inputs, {"items": "one per line\nof the file"}))
    assert parsed == [
        VariableInfo("context", "str", 12_345),
        VariableInfo("items", "list", 40, description="one per line\nof the file"),
        VariableInfo("meta", "dict", 2),
        VariableInfo("count", "int", None),
        VariableInfo("answer", "dict (from Answer)", None),
    ]


def test_a_preview_that_quotes_an_entry_is_not_read_as_a_variable():
    fake = "Variable: `ghost` (access it in your code)\nType: int\nPreview:\n```\n1\n```"
    parsed = parse_variables(format_variables({"context": fake + "\n" + fake, "query": "q"}, {}))
    assert [v.name for v in parsed] == ["context", "query"]


def test_created_names_are_listed_after_the_inputs_up_to_the_cap():
    created = [f"v{i}" for i in range(MAX_LISTED_VARIABLES + 25)]
    text = format_variables({"context": "abc"}, {}, created)
    assert text.endswith(f"v{MAX_LISTED_VARIABLES - 1}, ... and 25 more")
    parsed = parse_variables(text)
    assert parsed[0] == VariableInfo("context", "str", 3)
    assert parsed[1:] == [VariableInfo(name, is_input=False) for name in created[:MAX_LISTED_VARIABLES]]


def test_the_inputs_section_is_the_text_before_the_created_names():
    inputs = format_variables({"context": "abc", "query": "why?"}, {})
    assert inputs_section(inputs) == inputs
    with_created = format_variables({"context": "abc", "query": "why?"}, {}, ["x", "y"])
    # Byte for byte what the simulated model keyed its draws on before the parser lived here.
    assert inputs_section(with_created) == with_created.split("Variables you created earlier", 1)[0]
    assert inputs_section(with_created) == inputs + "\n\n"


def test_no_variables_read_as_none():
    assert parse_variables("") == [] and inputs_section("") == ""


# ---- repl_history ---------------------------------------------------------------------------------

def test_no_steps_write_the_no_history_line_and_read_as_none():
    assert format_history([], 100) == NO_HISTORY
    assert parse_history(NO_HISTORY) == []


def test_a_block_is_written_as_it_always_was():
    step = Step(iteration=3, reasoning="count", code="print(len(context))", output="12")
    assert format_history([step], 100) == (
        "=== Step 3 ===\nReasoning: count\nCode:\n```python\nprint(len(context))\n```\nOutput (2 chars):\n12")
    assert format_history([step.model_copy(update={"reasoning": ""})], 100).startswith("=== Step 3 ===\nCode:")


@pytest.mark.parametrize("output", [
    "12",
    "",
    "line one\n\n=== Step 7 ===\nCode:\n```python\nfake()\n```\nOutput (3 chars):\nabc",
    "```python\nprint('fenced')\n```\n``` and a stray fence",
    "trailing blank lines\n\n\n",
    "Output (99 chars):\nnot a header",
])
def test_steps_read_back_whatever_their_output_holds(output):
    written, history = history_of("first", output, "last")
    assert parse_history(history) == [
        HistoryEntry(s.iteration, s.reasoning, s.code, s.output, len(s.output)) for s in written]


def test_a_step_without_reasoning_or_code_reads_back_empty():
    history = format_history([Step(iteration=1, output="x"), Step(iteration=2, reasoning="r\nmore", output="")], 10)
    assert parse_history(history) == [HistoryEntry(1, "", "", "x", 1), HistoryEntry(2, "r\nmore", "", "", 0)]


def test_reasoning_that_shows_a_code_block_is_kept_as_reasoning():
    reasoning = "I will run\nCode:\n```python\nprint(2)\n```\nnext"
    (entry,) = parse_history(format_history([Step(iteration=1, reasoning=reasoning, code="print(1)", output="1")], 99))
    assert (entry.reasoning, entry.code, entry.output) == (reasoning, "print(1)", "1")


@pytest.mark.parametrize("max_output_chars", [0, 1, 7, 50])
def test_truncated_outputs_read_back_as_shown_with_their_full_length(max_output_chars):
    long = "=== Step 9 ===\n" + "abc\n" * 40
    written, history = history_of(long, "short", long, max_output_chars=max_output_chars)
    parsed = parse_history(history)
    assert [e.output for e in parsed] == [truncate_middle(s.output, max_output_chars) for s in written]
    assert [e.output_chars for e in parsed] == [len(s.output) for s in written]
    assert [e.truncated for e in parsed] == [True, len("short") > max_output_chars, True]


def test_a_history_stripped_by_its_reader_still_reads_its_last_output():
    for last in ["", "done\n\n", "x" * 500]:
        written, history = history_of("first", last, max_output_chars=100)
        parsed = parse_history(history.strip())
        assert [e.code for e in parsed] == [s.code for s in written]
        assert parsed[-1].output == truncate_middle(last, 100).strip()


# ---- iteration ------------------------------------------------------------------------------------

def test_the_iteration_line_reads_back():
    assert format_iteration(3, 20, 1_234) == "3/20; sub-model calls left: 1234"
    assert parse_iteration(format_iteration(3, 20, 1_234)) == IterationInfo(3, 20, 1_234)


def test_an_iteration_line_without_its_parts_reads_as_none():
    assert parse_iteration("4/10") == IterationInfo(4, 10, None)
    assert parse_iteration("") is None and parse_iteration("the first step") is None


# ---- the readers of the prompt read it through the transcript ------------------------------------

def test_the_simulated_root_reads_what_the_transcript_writes():
    info = format_variables({"context": ["a", "b", "c"], "query": "which?"}, {}, ["chunks"])
    tricky = "QUESTION: 'which?'\n\n=== Step 5 ===\nCode:\n```python\n# sim: submit\n```\nOutput (1 chars):\nx"
    history = format_history([
        Step(iteration=1, reasoning="look", code="# sim: peek\nprint(len(context))", output=tricky),
        Step(iteration=2, reasoning="work", code="# sim: work regex\nprint('ANSWER:', repr('b'))",
             output="ANSWER: 'b'\n"),
    ], 10_000)
    transcript = read_transcript(root_request(info, history, format_iteration(3, 12, 40)))
    assert transcript.variables == {"context": ("list", 3), "query": ("str", 6)}
    assert transcript.data == "context" and transcript.question_variable == "query"
    assert transcript.task_key == inputs_section(info)
    assert [(s.tag, s.output) for s in transcript.steps] == [("peek", tricky), ("work regex", "ANSWER: 'b'")]
    assert transcript.question == "which?" and transcript.steps[-1].answer == "b"
    assert (transcript.iteration, transcript.max_iters, transcript.calls_left) == (3, 12, 40)


def test_the_simulated_root_reads_a_real_rlm_prompt():
    lm = steps("print('=== Step 9 ===')\nprint('`' * 3)", "x = 5", "SUBMIT(answer='done')")
    with dspy.context(lm=lm):
        result = RLM("context, query -> answer", max_iters=5)(context="abc" * 100, query="what?")
    transcript = read_transcript(lm.requests[-1])
    assert transcript.variables == {"context": ("str", 300), "query": ("str", 5)}
    assert [(s.code, s.output) for s in transcript.steps] == [(s["code"], s["output"]) for s in result.trajectory[:2]]
    assert transcript.steps[0].output == "=== Step 9 ===\n```"
    assert (transcript.iteration, transcript.max_iters) == (3, 5)
