"""The simulated model's "files" world (`dspy-rlm ask --model sim`): real code over any files, answers
computed from them, always labelled simulated. Answers here are simulated-model answers."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM
from dspy_rlm.lms.simulated.files_world import SIMULATED_PREFIX, FilesWorld, keywords, main_term
from dspy_rlm.lms.simulated.lm import SimulatedLM
from dspy_rlm.lms.simulated.root import Transcript
from dspy_rlm.lms.simulated.world import PROMPT_SEPARATOR

SIGNATURE = "context: str, files: list[dict], question: str -> answer: str"


def corpus(texts: dict[str, str]) -> tuple[str, list[dict]]:
    """A context and index in the shape `read_corpus` makes (a header line before each file's text)."""
    context, files = "", []
    for path, text in texts.items():
        context += f"===== file: {path} (text, {len(text)} bytes) =====\n"
        files.append({"path": path, "type": "text", "size": len(text), "offset": len(context), "chars": len(text),
                      "status": "ok", "reason": None})
        context += text + "\n"
    files.append({"path": "blob.bin", "type": "binary", "size": 9, "offset": -1, "chars": 0, "status": "skipped",
                  "reason": "binary file"})
    return context, files


def ask(question: str, texts: dict[str, str], seed: int = 0) -> dspy.Prediction:
    context, files = corpus(texts)
    lm = SimulatedLM(FilesWorld(), seed=seed, strategy="regex", error_rate=0.0)
    with dspy.context(lm=lm):
        return RLM(SIGNATURE, max_iters=6, sub_lm=lm)(context=context, files=files, question=question)


def test_the_data_variable_is_context_even_when_a_list_input_sits_beside_it():
    """The `files` index is a list, but the data the root model reads is `context`."""
    t = Transcript("", [], {"context": ("str", 5000), "files": ("list", 3), "question": ("str", 30)}, [], 1, 6, 50,
                   ["answer"])
    assert t.data == "context" and t.question_variable == "question"
    assert Transcript("", [], {"docs": ("list", 3), "query": ("str", 9)}, [], 1, 6, 50, ["answer"]).data == "docs"


def test_a_count_question_is_answered_with_a_count_computed_in_the_sandbox():
    logs = {"a.log": "INFO up\nERROR disk full\nERROR again ERROR\nwarning: error in lowercase",
            "b.log": "ERROR one\nINFO fine", "c.txt": "nothing here"}
    prediction = ask("How many lines contain ERROR?", logs)
    assert prediction.answer.startswith(SIMULATED_PREFIX)
    assert " 3 lines contain 'ERROR'" in prediction.answer and "a.log: 2" in prediction.answer
    assert any("llm_query_batched" in step["code"] for step in prediction.trajectory)


def test_a_which_file_question_names_the_files_that_mention_the_term():
    texts = {"src/zoo.py": "def feed():\n    return 'zebra'", "notes.md": "A Zebra crossing.", "other.txt": "no"}
    prediction = ask("Which file mentions zebra?", texts)
    assert "2 of 3 files mention 'zebra'" in prediction.answer
    assert "src/zoo.py" in prediction.answer and "notes.md" in prediction.answer and "other.txt" not in prediction.answer


def test_another_question_quotes_the_best_matching_passage_with_its_file_and_line():
    texts = {"guide.md": "# Guide\nInstall it with pip.\nThe default port is 8080 for the server.", "x.txt": "port"}
    prediction = ask("What is the default port of the server?", texts)
    assert "guide.md:3: The default port is 8080" in prediction.answer and prediction.answer.startswith(SIMULATED_PREFIX)


def test_what_is_not_in_the_files_is_reported_as_not_found():
    prediction = ask("Which file mentions quasar?", {"a.txt": "stars and planets"})
    assert "could not find 'quasar'" in prediction.answer
    prediction = ask("Who wrote the kraken poem?", {"a.txt": "stars and planets"})
    assert "could not find an answer" in prediction.answer


@pytest.mark.parametrize(("question", "term"), [
    ("How many lines contain ERROR?", "ERROR"), ("Which files define parse_config?", "parse_config"),
    ("Which file mentions 'hello world'?", "hello world"), ("How many TODO lines are there?", "TODO"),
])
def test_the_main_term_of_a_question(question, term):
    assert main_term(question, keywords(question)) == term


def test_the_sub_model_answers_from_the_prompt_text_only():
    world = FilesWorld()
    text = "a.log:1: ERROR x\nb.log:4: INFO y\nb.log:9: ERROR z"
    assert world.answer("Count the lines below that contain 'ERROR' (case sensitive). Reply." + PROMPT_SEPARATOR + text) == "2"
    which = "Which files do the lines below come from that mention 'info'? Reply."
    assert world.answer(which + PROMPT_SEPARATOR + text) == "b.log"
    assert world.answer("Something else entirely" + PROMPT_SEPARATOR + text) == "NONE"
