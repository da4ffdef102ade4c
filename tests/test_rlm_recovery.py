"""Sandbox failures become observations; the run goes on with the inputs back in place."""

from __future__ import annotations

import dspy

from dspy_rlm import RLM
from tests.helpers import steps


def test_a_step_that_times_out_is_reported_and_the_lost_variables_are_named():
    lm = steps("kept = 1", "while True:\n    pass", "SUBMIT(answer=f'{len(context)}:{\"kept\" in globals()}')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", step_timeout=1.0)(context="abc")
    timed_out = result.trajectory[1]
    assert timed_out["error"] == "timeout"
    assert "kept" in timed_out["output"] and "restart" in timed_out["output"].lower()
    assert result.answer == "3:False"


def test_exit_calls_do_not_end_the_session():
    lm = steps("x = 5\nimport sys\nsys.exit(1)", "exit()", "SUBMIT(answer=str(x))")
    with dspy.context(lm=lm):
        result = RLM("context -> answer")(context="abc")
    assert result.answer == "5"
    assert "SUBMIT" in result.trajectory[0]["output"]


def test_tracebacks_show_only_the_models_code():
    lm = steps("def f():\n    return 1 / 0\nf()", "SUBMIT(answer='ok')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer")(context="abc")
    output = result.trajectory[0]["output"]
    assert "ZeroDivisionError" in output and "line 2" in output
    for leak in ("/tmp", "site-packages", "_eryx", "dspy_rlm", "wasm"):
        assert leak not in output
