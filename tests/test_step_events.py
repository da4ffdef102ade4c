"""DSPy callback events for what DSPy itself does not see: each code step and each sub-query.

A step fires `on_interpreter_execute_start/end` (inputs: iteration, reasoning, code; outputs: the
step's trajectory record); a sub-query fires `on_tool_start/end` for a tool named `llm_query`, and a
batch one for `llm_query_batched` around its slots. User callbacks, MLflow and the live display all
read these events.
"""

from __future__ import annotations

import threading

import dspy
from dspy.utils.callback import BaseCallback

from dspy_rlm import RLM, ScriptedLM
from tests.helpers import steps

BATCH_STEP = "a = llm_query('one')\nb = llm_query_batched(['two', 'three'])\nprint(a, b)"


def echo_sub() -> ScriptedLM:
    return ScriptedLM(lambda r: {"response": f"<{r.field('prompt')}>"}, model="scripted/sub")


class Recorder(BaseCallback):
    """Keeps every step and tool event, in order, as (kind, name or iteration, payload)."""

    def __init__(self):
        self.events: list[tuple[str, object, object]] = []
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}

    def _add(self, *event):
        with self._lock:
            self.events.append(event)

    def on_interpreter_execute_start(self, call_id, instance, inputs):
        self._add("execute_start", inputs["iteration"], inputs)

    def on_interpreter_execute_end(self, call_id, outputs, exception=None):
        self._add("execute_end", outputs["iteration"], outputs)

    def on_tool_start(self, call_id, instance, inputs):
        self._names[call_id] = instance.name
        self._add("tool_start", instance.name, inputs)

    def on_tool_end(self, call_id, outputs, exception=None):
        self._add("tool_end", self._names.pop(call_id), exception if exception is not None else outputs)

    def of(self, kind, name=None):
        return [payload for k, n, payload in self.events if k == kind and (name is None or n == name)]


def _check_events(recorder: Recorder, result) -> None:
    starts, ends = recorder.of("execute_start"), recorder.of("execute_end")
    assert [s["iteration"] for s in starts] == [1, 2] and [e["iteration"] for e in ends] == [1, 2]
    assert starts[0]["code"] == BATCH_STEP and starts[0]["reasoning"] == "step 1"
    assert ends == result.trajectory  # the end event carries the step's own record
    prompts = [i["prompt"] for i in recorder.of("tool_start", "llm_query")]
    assert prompts[0] == "one" and sorted(prompts[1:]) == ["three", "two"]  # the batch's slots run at once
    assert sorted(recorder.of("tool_end", "llm_query")) == ["<one>", "<three>", "<two>"]
    assert recorder.of("tool_start", "llm_query_batched") == [{"prompts": ["two", "three"]}]
    assert recorder.of("tool_end", "llm_query_batched") == [["<two>", "<three>"]]
    # Sub-queries happen inside their step: between its start and end events.
    kinds = [(k, n) for k, n, _ in recorder.events]
    first_end = kinds.index(("execute_end", 1))
    assert all(kinds.index(e) < first_end for e in kinds if e[0].startswith("tool"))


def test_a_user_callback_sees_every_step_and_sub_query():
    recorder = Recorder()
    with dspy.context(lm=steps(BATCH_STEP, "SUBMIT(answer=a)"), callbacks=[recorder]):
        result = RLM("context -> answer", sub_lm=echo_sub())(context="ctx")
    assert result.answer == "<one>"
    _check_events(recorder, result)


async def test_an_async_call_fires_the_same_events():
    recorder = Recorder()
    with dspy.context(lm=steps(BATCH_STEP, "SUBMIT(answer=a)"), callbacks=[recorder]):
        result = await RLM("context -> answer", sub_lm=echo_sub()).acall(context="ctx")
    _check_events(recorder, result)


def test_a_failed_sub_query_ends_its_event_with_the_exception():
    recorder = Recorder()

    def broken(request):
        raise RuntimeError("sub-model down")

    code = "try:\n    llm_query('x')\nexcept Exception as e:\n    print('failed', e)"
    with dspy.context(lm=steps(code, "SUBMIT(answer='done')"), callbacks=[recorder]):
        RLM("context -> answer", sub_lm=ScriptedLM(broken, model="scripted/broken"))(context="ctx")
    ended = recorder.of("tool_end", "llm_query")
    assert len(ended) == 1 and isinstance(ended[0], Exception)


def test_a_step_without_code_still_fires_its_pair_of_events():
    recorder = Recorder()
    lm = ScriptedLM([{"reasoning": "thinking", "code": "```python\n```"},
                     {"reasoning": "r", "code": "```python\nSUBMIT(answer='ok')\n```"}])
    with dspy.context(lm=lm, callbacks=[recorder]):
        result = RLM("context -> answer")(context="ctx")
    ends = recorder.of("execute_end")
    assert [e["iteration"] for e in ends] == [1, 2] and ends == result.trajectory


def test_a_huge_reasoning_reaches_callbacks_bounded_as_in_the_history():
    recorder = Recorder()
    lm = ScriptedLM([{"reasoning": "r" * 1_000_000, "code": "```python\nSUBMIT(answer='ok')\n```"}])
    with dspy.context(lm=lm, callbacks=[recorder]):
        RLM("context -> answer")(context="ctx")
    (start,) = recorder.of("execute_start")
    assert len(start["reasoning"]) < 3_000 and "characters cut" in start["reasoning"]
