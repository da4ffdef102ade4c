"""Harvest: functions of successful runs, validated in the sandbox; recorded calls become regression tests."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM, CodeLibrary, Stabilize
from dspy_rlm.library import HarvestedRun, candidates_from_steps, library_function, run_tests
from tests.library.conftest import COUNT_WORDS as COUNT_WORDS_SOURCE, FIRST_RUN, word_counter


def _examples(*texts: str) -> list[dspy.Example]:
    return [dspy.Example(context=text, answer=str(len(text.split()))).with_inputs("context") for text in texts]


def _metric(example, prediction, trace=None) -> float:
    return float(prediction.answer == example.answer)


TRAIN = _examples("a b c", "one two three four five")
HELD_OUT = _examples("x y z w", "p q r s t u v", "ab cd")  # count_fast is wrong on each


def test_candidates_are_the_documented_self_contained_functions_of_successful_runs():
    runs = [HarvestedRun("train[0]", 1.0, [{"code": FIRST_RUN}]),
            HarvestedRun("train[1]", 0.0, [{"code": "def failed_run():\n    '''Never kept.'''\n"}])]
    found = {c.name: c for c in candidates_from_steps(runs, threshold=1.0)}
    assert sorted(found) == ["count_fast", "count_words", "near_total", "shout"]
    assert found["near_total"].problem == ("not self-contained: reads words, defined by the run rather than "
                                           "passed as parameters")
    assert found["count_fast"].problem is None and found["count_fast"].code.startswith("import math\n")
    assert found["count_words"].runs == ("train[0]",)


def test_a_function_written_in_two_versions_keeps_the_one_most_runs_wrote():
    one = "def f(x):\n    '''F.'''\n    return x + 1\n"
    other = "def f(x):\n    '''F.'''\n    return 1 + x\n"
    runs = [HarvestedRun(f"r{i}", 1.0, [{"code": code}]) for i, code in enumerate([one, other, other])]
    kept, dropped = sorted(candidates_from_steps(runs, 1.0), key=lambda c: c.problem is not None)
    assert "1 + x" in kept.code and kept.problem is None
    assert dropped.problem == "another version of f was kept (written by 2 run(s), this one by 1)"


def test_stabilize_accepts_the_reused_function_and_rejects_the_others_with_reasons():
    program = RLM("context -> answer")
    with dspy.context(lm=dspy_rlm_scripted()):
        compiled = Stabilize(metric=_metric, date="2026-12-02").compile(program, trainset=TRAIN, valset=HELD_OUT)
    report = compiled.stabilize_report
    assert report.accepted == ["count_words"]
    assert report.rejected["shout"] == "never called by the validation runs"
    assert report.rejected["count_fast"] == "lowered the held-out score from 1.000 to 0.000"
    assert report.rejected["near_total"].startswith("not self-contained: reads words")
    assert report.solver is None  # count_words(text) does not take the task's input, context
    assert compiled.library.names == ["count_words"] and program.library is None  # the student is untouched
    header = compiled.library.files()["count_words.py"].splitlines()[:4]
    assert header == ["# dspy-rlm library: harvested", "# program: context -> answer", "# run: train[0], train[1]",
                      "# date: 2026-12-02"]


def test_recorded_calls_are_regression_tests_that_fail_when_the_function_changes():
    with dspy.context(lm=dspy_rlm_scripted()):
        compiled = Stabilize(metric=_metric).compile(RLM("context -> answer"), trainset=TRAIN, valset=HELD_OUT)
    library = compiled.library
    recorded = library.functions["count_words"].tests
    assert sorted(call.args[0] for call in recorded) == ["ab cd", "p q r s t u v", "x y z w"]
    assert all(call.result == len(call.args[0].split()) for call in recorded)
    assert all(outcome.passed for outcome in run_tests(library))
    broken = library.adding(library_function(
        'def count_words(text):\n    """The number of words."""\n    return len(text.split(" ")) - 1\n'))
    broken = broken.with_tests({"count_words": list(recorded)})
    outcomes = run_tests(broken)
    assert [o.passed for o in outcomes] == [False, False, False]
    assert "returned 1, recorded 2" in outcomes[0].line()


def test_a_harvested_library_written_twice_is_byte_identical(tmp_path):
    with dspy.context(lm=dspy_rlm_scripted()):
        first = Stabilize(metric=_metric, date="2026-12-02").compile(RLM("context -> answer"), trainset=TRAIN,
                                                                      valset=HELD_OUT)
        second = Stabilize(metric=_metric, date="2026-12-02").compile(RLM("context -> answer"), trainset=TRAIN,
                                                                       valset=HELD_OUT)
    first.library.write(tmp_path / "a")
    second.library.write(tmp_path / "b")
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()} == \
        {p.name: p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert CodeLibrary(tmp_path / "a").content_hash == first.library.content_hash


def dspy_rlm_scripted():  # a fresh model per compile: its requests are its own
    from dspy_rlm import ScriptedLM

    return ScriptedLM(word_counter)


@pytest.mark.slow
def test_runs_can_be_harvested_from_scored_mlflow_traces(tmp_path):
    from dspy_rlm.observability.tracking import evaluate
    from dspy_rlm.optimizers.passes import runs_from_traces
    from tests.mlflow_helpers import mlflow_store, traces

    with mlflow_store(tmp_path, "harvest-traces"):
        import mlflow

        with mlflow.start_run(), dspy.context(lm=dspy_rlm_scripted()):
            evaluate(RLM("context -> answer"), TRAIN, _metric, name="scored")
        ids = [trace.info.trace_id for trace in traces()]
        runs = runs_from_traces(ids)
    assert sorted(run.score for run in runs) == [1.0, 1.0] and {run.label for run in runs} == set(ids)
    found = {c.name for c in candidates_from_steps(runs, threshold=1.0) if c.problem is None}
    assert found == {"count_words", "count_fast", "shout"}


def test_stabilize_composes_with_another_optimizer_in_either_order():
    bootstrap = dspy.BootstrapFewShot(metric=_metric, max_bootstrapped_demos=1, max_labeled_demos=0)
    with dspy.context(lm=dspy_rlm_scripted()):
        stabilized = Stabilize(metric=_metric).compile(RLM("context -> answer"), trainset=TRAIN, valset=HELD_OUT)
        then_demos = bootstrap.compile(stabilized, trainset=TRAIN)
        demos_first = bootstrap.compile(RLM("context -> answer"), trainset=TRAIN)
        then_library = Stabilize(metric=_metric).compile(demos_first, trainset=TRAIN, valset=HELD_OUT)
    assert then_demos.library.files() == stabilized.library.files() and then_demos.generate_code.demos
    assert then_library.library.names == ["count_words"]
    assert len(then_library.generate_code.demos) == len(demos_first.generate_code.demos) >= 1


def test_private_helpers_travel_with_their_caller_and_callers_of_rejected_functions_are_rejected():
    code = '''
rows = context.split()
def _clean(word):
    return word.strip('.,').lower()
def tidy(words):
    """The words, cleaned."""
    return [_clean(w) for w in words]
def first_row():
    """The first row of the run."""
    return rows[0]
def first_tidy():
    """The first row, cleaned."""
    return tidy([first_row()])[0]
'''
    found = {c.name: c for c in candidates_from_steps([HarvestedRun("r", 1.0, [{"code": code}])], 1.0)}
    assert sorted(found) == ["first_row", "first_tidy", "tidy"]
    assert found["tidy"].problem is None and "def _clean(word):" in found["tidy"].code
    assert library_function(found["tidy"].code).source.signature == "tidy(words)"
    assert found["first_row"].problem.startswith("not self-contained: reads rows")
    assert found["first_tidy"].problem == "calls first_row, which was rejected"


def test_in_a_program_of_two_rlms_the_solver_goes_only_to_the_rlms_of_the_first_ones_task():
    from dspy_rlm.library import CodeLibrary as Library
    from dspy_rlm.optimizers.stabilize import _attach

    class TwoSteps(dspy.Module):
        def __init__(self):
            super().__init__()
            self.count = RLM("context -> answer")
            self.again = RLM("context -> answer")
            self.other = RLM("text -> summary")

    solve = library_function('def solve(context):\n    """All."""\n    return {"answer": context}\n')
    program = TwoSteps()
    _attach(program, Library(functions=[library_function(COUNT_WORDS_SOURCE), solve]))
    assert program.count.library.names == program.again.library.names == ["count_words", "solve"]
    assert program.other.library.names == ["count_words"]
