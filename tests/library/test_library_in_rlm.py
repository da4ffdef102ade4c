"""An RLM with a library: its functions in every sandbox session, listed in the prompt, saved with the
program; its solver answers with no root-model call, or hands over to the loop showing its error."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM, CodeLibrary, ScriptedLM
from dspy_rlm.errors import LibraryError
from dspy_rlm.library import INDEX_HEADING, library_function
from tests.helpers import steps
from tests.library.conftest import COUNT_WORDS

SOLVE = '''
def solve(context):
    """Count the words of the context."""
    if not context.strip():
        raise ValueError("the context is empty: nothing to count")
    return {"answer": str(count_words(context))}
'''


def _rlm(library, **kwargs) -> RLM:
    return RLM("context -> answer", library=library, **kwargs)


def test_the_library_is_defined_in_the_sandbox_and_listed_in_the_prompt(library_folder):
    lm = steps("print(count_words(context))", "FINAL(str(count_words(context)))")
    with dspy.context(lm=lm):
        prediction = _rlm(str(library_folder))(context="one two three")
    assert prediction.answer == "3"
    assert prediction.trajectory[0]["output"].strip() == "3"
    shown = lm.requests[0].field("variables_info")
    assert f"{INDEX_HEADING}\n- count_words(text): The number of whitespace-separated words in text." in shown
    assert "count_words" not in shown.split(INDEX_HEADING)[0]  # not listed as a variable the model made


def test_a_step_that_crashes_the_guest_gets_the_library_back_with_the_inputs(library_folder):
    lm = steps("x = 'a' * (1 << 40)", "FINAL(str(count_words(context)))")
    with dspy.context(lm=lm):
        prediction = _rlm(CodeLibrary(library_folder), max_memory_mb=64)(context="one two")
    assert prediction.answer == "2"


def test_save_and_load_carry_the_library_and_its_hash(tmp_path, library_folder):
    library = CodeLibrary(library_folder)
    _rlm(library).save(str(tmp_path / "program.json"))
    loaded = _rlm(None)
    loaded.load(str(tmp_path / "program.json"))
    assert loaded.library.files() == library.files()
    assert loaded.library.content_hash == library.content_hash
    with dspy.context(lm=steps("FINAL(str(count_words(context)))")):
        assert loaded(context="a b c d").answer == "4"


def test_loading_a_tampered_library_is_refused(tmp_path, library_folder):
    import json

    path = tmp_path / "program.json"
    _rlm(CodeLibrary(library_folder)).save(str(path))
    state = json.loads(path.read_text())
    state["library"]["files"]["count_words.py"] += "\n# edited\n"
    path.write_text(json.dumps(state))
    with pytest.raises(LibraryError, match="do not match its hash"):
        _rlm(None).load(str(path))


def test_a_solver_that_answers_ends_the_call_with_zero_root_model_requests():
    library = CodeLibrary(functions=[library_function(COUNT_WORDS), library_function(SOLVE)])
    lm = ScriptedLM([])  # any request would raise ScriptExhausted
    with dspy.context(lm=lm):
        prediction = _rlm(library)(context="one two three four")
    assert prediction.answer == "4" and prediction.solver == {"used": True}
    assert lm.requests == [] and prediction.usage["root_calls"] == 0
    assert prediction.trajectory[0]["iteration"] == 0


def test_a_solver_that_raises_hands_over_to_the_loop_with_its_error_shown():
    library = CodeLibrary(functions=[library_function(COUNT_WORDS), library_function(SOLVE)])
    lm = steps("FINAL('0')")
    with dspy.context(lm=lm):  # the solver's failure is not a failed step of the model's
        prediction = _rlm(library, max_consecutive_errors=1)(context="   ")
    assert prediction.answer == "0"
    assert prediction.solver["used"] is False and "the context is empty" in prediction.solver["error"]
    history = lm.requests[0].field("repl_history")
    assert "=== Step 0 ===" in history and "ValueError: the context is empty: nothing to count" in history
    assert "solve it in code as usual" in history


def test_a_solver_output_of_the_wrong_type_or_refused_by_validate_falls_back():
    wrong = library_function('def solve(context):\n    """Wrong."""\n    return {"answer": 1, "extra": 2}\n')
    lm = steps("FINAL('x')")
    with dspy.context(lm=lm):
        prediction = _rlm(CodeLibrary(functions=[wrong]))(context="a")
    assert prediction.solver["used"] is False and "extra" in prediction.solver["error"]
    library = CodeLibrary(functions=[library_function(COUNT_WORDS), library_function(SOLVE)])
    lm = steps("FINAL('2')")
    with dspy.context(lm=lm):
        prediction = _rlm(library, validate=lambda out: "must be even" if int(out["answer"]) % 2 else None)(context="a b c")
    assert prediction.solver == {"used": False, "error": "the solver's outputs failed validation: must be even"}
    assert len(lm.requests) == 1


def test_library_functions_may_call_sub_models_and_their_calls_are_recorded():
    from dspy_rlm.library import CallRecorder

    ask = library_function('def ask_each(parts):\n    """One sub-model reply per part."""\n'
                           '    return [llm_query("summarise: " + p) for p in parts]\n')
    recorder = CallRecorder()
    sub = ScriptedLM(lambda request: {"response": "S"})
    with dspy.context(lm=steps("FINAL(str(ask_each(context.split())))")):
        prediction = _rlm(CodeLibrary(functions=[ask]).recording(recorder), sub_lm=sub)(context="a b")
    assert prediction.answer == "['S', 'S']" and prediction.usage["sub_calls"] == 2
    assert [(c.function, c.args, c.result) for c in recorder.calls] == [("ask_each", (["a", "b"],), ["S", "S"])]


def test_a_call_is_recorded_with_its_arguments_as_they_came_in():
    from dspy_rlm.library import CallRecorder

    last = library_function('def take_last(items):\n    """Remove and return the last item."""\n    return items.pop()\n')
    recorder = CallRecorder()
    with dspy.context(lm=steps("FINAL(str(take_last([1, 2, 3])))")):
        _rlm(CodeLibrary(functions=[last]).recording(recorder))(context="x")
    assert [(c.args, c.result) for c in recorder.calls] == [(([1, 2, 3],), 3)]
