"""The trajectory viewer: `inspect_trajectory` (a result, an error, a trace id) and `dspy-rlm show`."""

from __future__ import annotations

import io

import dspy
import pytest
from rich.console import Console

from dspy_rlm import RLM, LimitExceeded, ScriptedLM, inspect_trajectory
from dspy_rlm.cli.main import main
from dspy_rlm.observability.viewer import load_trajectory
from tests.helpers import steps
from tests.mlflow_helpers import mlflow_store, traces

FIRST = "# count the lines\nlines = context.splitlines()\nprint(len(lines))\nprint(llm_query('hi'))"


def echo_sub() -> ScriptedLM:
    return ScriptedLM(lambda r: {"response": f"<{r.field('prompt')}>"}, model="scripted/sub")


def _run(**kwargs):
    with dspy.context(lm=steps(FIRST, "SUBMIT(answer='two')")):
        return RLM("context -> answer", sub_lm=echo_sub(), **kwargs)(context="a\nb")


def _shown(source, **kwargs) -> str:
    out = io.StringIO()
    inspect_trajectory(source, console=Console(file=out, width=160, color_system=None), **kwargs)
    return out.getvalue()


def _check_shown(text: str) -> None:
    assert "Step 1" in text and "Step 2" in text
    assert "# count the lines" in text and "lines = context.splitlines()" in text  # the code, line by line
    assert "2\n" in text and "<hi>" in text  # the outputs
    assert "1 sub-query" in text  # per step: its sub-queries
    assert "SUBMIT(answer='two')" in text
    assert "root" in text and "tokens" in text  # the usage summary


def test_a_result_shows_its_steps_code_outputs_sub_queries_and_usage():
    _check_shown(_shown(_run()))


def test_an_error_shows_the_steps_it_carries():
    with dspy.context(lm=steps("print('looking')")), pytest.raises(LimitExceeded) as raised:
        RLM("context -> answer", max_iters=1, on_limit="raise")(context="x")
    text = _shown(raised.value)
    assert "Step 1" in text and "looking" in text


def test_a_trace_id_shows_the_same_steps(tmp_path):
    with mlflow_store(tmp_path, "viewer"):
        result = _run()
        trace = traces()[0]
        trajectory, usage = load_trajectory(trace.info.trace_id)
        text = _shown(trace.info.trace_id)
    assert [step["code"] for step in trajectory] == [step["code"] for step in result.trajectory]
    assert usage["sub_calls"] == 1
    _check_shown(text)


def test_dspy_rlm_show_prints_a_trace_and_names_an_unknown_one(tmp_path, capsys):
    with mlflow_store(tmp_path, "viewer-cli") as uri:
        _run()
        trace_id = traces()[0].info.trace_id
        assert main(["show", trace_id, "--tracking-uri", uri]) == 0
        _check_shown(capsys.readouterr().out)
        assert main(["show", "tr-0000000000", "--tracking-uri", uri]) == 2
        assert "no trace tr-0000000000" in capsys.readouterr().err


def test_a_long_output_is_cut_in_the_middle_as_the_model_saw_it():
    with dspy.context(lm=steps("print('x' * 5000 + 'END')", "SUBMIT(answer='ok')")):
        result = RLM("context -> answer")(context="c")
    text = _shown(result, max_output_chars=200)
    assert "END" in text and "x" * 1000 not in text
