"""The live display (`RLMProgress`), adding callbacks without dropping MLflow's, and `verbose=True`."""

from __future__ import annotations

import io

import dspy
import mlflow
from dspy.utils.callback import BaseCallback
from rich.console import Console

from dspy_rlm import RLM, RLMProgress, ScriptedLM, adding_callbacks
from tests.helpers import steps
from tests.mlflow_helpers import mlflow_store, traces

BATCH_STEP = "a = llm_query('one')\nb = llm_query_batched(['two', 'three'])\nprint(a, b)"


def echo_sub() -> ScriptedLM:
    return ScriptedLM(lambda r: {"response": f"<{r.field('prompt')}>"}, model="scripted/sub")


def _display() -> tuple[RLMProgress, io.StringIO]:
    out = io.StringIO()
    return RLMProgress(Console(file=out, width=200, color_system=None)), out


def test_the_display_shows_each_step_its_code_and_its_output_as_it_runs():
    progress, out = _display()
    last = "print('the last words')\nSUBMIT(answer=a)"
    with progress.live(), dspy.context(lm=steps(BATCH_STEP, last)):
        RLM("context -> answer", sub_lm=echo_sub())(context="ctx")
    text = out.getvalue()
    assert "step 1" in text and "step 2" in text and "a = llm_query('one')" in text
    assert "<one> ['<two>', '<three>']" in text
    # The last step's output never reaches a REPL history: only the step event can show it.
    assert "the last words" in text
    assert (progress.steps, progress.sub_queries) == (2, 3)


def test_live_adds_the_display_to_the_callbacks_already_configured():
    class Counter(BaseCallback):
        starts = 0

        def on_interpreter_execute_start(self, call_id, instance, inputs):
            Counter.starts += 1

    progress, _ = _display()
    with dspy.context(callbacks=[Counter()], lm=steps("SUBMIT(answer='ok')")), progress.live():
        RLM("context -> answer")(context="ctx")
    assert Counter.starts == 1 and progress.steps == 1


def test_adding_callbacks_keeps_the_current_ones_once_each():
    first, second = BaseCallback(), BaseCallback()
    with dspy.context(callbacks=[first]):
        with adding_callbacks(second, first):
            assert dspy.settings.callbacks == [first, second]
        assert dspy.settings.callbacks == [first]


def test_the_demo_run_shows_its_trace(tmp_path):
    """`dspy-rlm demo` used to replace MLflow autolog's callback with its display: no trace."""
    from dspy_rlm.cli.demo import run_demo

    with mlflow_store(tmp_path, "demo-trace") as uri:
        run_demo("niah", 2**13, 1, tracking_uri=uri, console=Console(file=io.StringIO()))
        run = mlflow.search_runs(experiment_names=["dspy-rlm-demo"], output_format="list")[0]
        found = traces(run_id=run.info.run_id)
    assert len(found) == 1 and found[0].data.spans[0].name == "RLM.forward"


def test_verbose_prints_each_step_without_any_logging_setup(capfd):
    with dspy.context(lm=steps("print('hello from step 1')", "SUBMIT(answer='ok')")):
        RLM("context -> answer", verbose=True)(context="ctx")
    err = capfd.readouterr().err
    assert "RLM step 1" in err and "hello from step 1" in err and "RLM step 2" in err


def test_verbose_is_silent_when_off_and_when_dspy_logging_is_disabled(capfd):
    with dspy.context(lm=steps("print('quiet')", "SUBMIT(answer='ok')")):
        RLM("context -> answer")(context="ctx")
    assert "RLM step" not in capfd.readouterr().err
    dspy.disable_logging()
    try:
        with dspy.context(lm=steps("SUBMIT(answer='ok')")):
            RLM("context -> answer", verbose=True)(context="ctx")
    finally:
        dspy.enable_logging()
    assert "RLM step" not in capfd.readouterr().err


def test_a_long_output_shows_its_head_and_how_many_lines_are_left():
    out = io.StringIO()
    progress = RLMProgress(Console(file=out, width=200, color_system=None), output_lines=2)
    with progress.live(), dspy.context(lm=steps("print('one\\ntwo\\nthree\\nfour')", "SUBMIT(answer='ok')")):
        RLM("context -> answer")(context="ctx")
    lines = out.getvalue().splitlines()
    start = lines.index("  > one")
    assert lines[start:start + 3] == ["  > one", "  > two", "  > ... (2 more lines)"]
