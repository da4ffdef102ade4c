"""`EryxInterpreter`'s `on_interpreter_*` callbacks against DSPy's own callback tests.

Ported from stanfordnlp/dspy `tests/callback/test_interpreter_callback.py` (the tests that run
`dspy.PythonInterpreter`; the JSON-RPC one is left out). DSPy's names are kept.
"""

from __future__ import annotations

import dspy
import pytest
from dspy.primitives.code_interpreter import CodeExecutionError, CodeInterpreterError, FinalOutput
from dspy.utils.callback import ACTIVE_CALL_ID, BaseCallback

from dspy_rlm import EryxInterpreter

pytestmark = pytest.mark.usefixtures("eryx_factory")


class RecordingCallback(BaseCallback):
    """Records every interpreter event: handler, ids, instance, inputs or outputs and exception."""

    def __init__(self, name=None, observed=None):
        self.events = []
        self.name = name
        self.observed = observed

    def _record(self, event):
        self.events.append(event)
        if self.observed is not None:
            self.observed.append((self.name, event["handler"]))

    def _start(self, handler, call_id, instance, inputs):
        self._record({"handler": handler, "call_id": call_id, "parent_call_id": ACTIVE_CALL_ID.get(),
                      "instance": instance, "inputs": inputs})

    def _end(self, handler, call_id, outputs, exception):
        self._record({"handler": handler, "call_id": call_id, "parent_call_id": ACTIVE_CALL_ID.get(),
                      "outputs": outputs, "exception": exception})

    def on_interpreter_execute_start(self, call_id, instance, inputs):
        self._start("execute_start", call_id, instance, inputs)

    def on_interpreter_execute_end(self, call_id, outputs, exception):
        self._end("execute_end", call_id, outputs, exception)

    def on_interpreter_tool_call_start(self, call_id, instance, inputs):
        self._start("tool_start", call_id, instance, inputs)

    def on_interpreter_tool_call_end(self, call_id, outputs, exception):
        self._end("tool_end", call_id, outputs, exception)

    def on_interpreter_startup_start(self, call_id, instance, inputs):
        self._start("startup_start", call_id, instance, inputs)

    def on_interpreter_startup_end(self, call_id, outputs, exception):
        self._end("startup_end", call_id, outputs, exception)

    def on_interpreter_shutdown_start(self, call_id, instance, inputs):
        self._start("shutdown_start", call_id, instance, inputs)

    def on_interpreter_shutdown_end(self, call_id, outputs, exception):
        self._end("shutdown_end", call_id, outputs, exception)


def events_for(callback, handler):
    return [event for event in callback.events if event["handler"] == handler]


def test_invoke_tool_reports_raw_result_and_propagates_exception():
    """The tool-call inputs are DSPy's `{"tool_name", "kwargs"}`. Before: an extra `'args': ()`."""
    callback = RecordingCallback()
    raw_result = object()
    expected_error = RuntimeError("tool failed")

    def fail():
        raise expected_error

    interpreter = EryxInterpreter(tools={"succeed": lambda: raw_result, "fail": fail}, callbacks=[callback])
    assert interpreter.invoke_tool("succeed", {}) is raw_result
    with pytest.raises(RuntimeError) as exc_info:
        interpreter.invoke_tool("fail", {})

    starts, ends = events_for(callback, "tool_start"), events_for(callback, "tool_end")
    assert starts[0]["inputs"] == {"tool_name": "succeed", "kwargs": {}}
    assert ends[0]["call_id"] == starts[0]["call_id"]
    assert ends[0]["outputs"] is raw_result and ends[0]["exception"] is None
    assert ends[1]["outputs"] is None and ends[1]["exception"] is expected_error
    assert exc_info.value is expected_error


def test_tool_calls_from_code_report_keywords_for_positional_arguments():
    """Positional arguments from the code reach the callback as the keywords they bind."""
    callback = RecordingCallback()

    def join(a: str, b: str = "-") -> str:
        return a + b

    with EryxInterpreter(tools={"join": join}, callbacks=[callback]) as interpreter:
        assert interpreter.execute("print(join('x', 'y'))") == "xy\n"
    assert [event["inputs"] for event in events_for(callback, "tool_start")] == [
        {"tool_name": "join", "kwargs": {"a": "x", "b": "y"}}]


def test_positional_only_tools_still_get_their_arguments():
    """Arguments no parameter name binds go to the tool positionally (the callback sees the keywords only)."""
    callback = RecordingCallback()

    def count(items, /, *more):
        return len(items) + len(more)

    with EryxInterpreter(tools={"count": count}, callbacks=[callback]) as interpreter:
        assert interpreter.execute("print(count([1, 2, 3], 'x'))") == "4\n"
        with pytest.raises(TypeError):  # a direct call gets no arguments left over from the code's call
            interpreter.invoke_tool("count", {})
    assert events_for(callback, "tool_start")[0]["inputs"] == {"tool_name": "count", "kwargs": {}}


def test_unknown_tool_reports_code_interpreter_error():
    callback = RecordingCallback()
    interpreter = EryxInterpreter(callbacks=[callback])
    with pytest.raises(CodeInterpreterError, match="Unknown tool: missing") as exc_info:
        interpreter.invoke_tool("missing", {})
    end = events_for(callback, "tool_end")[0]
    assert end["outputs"] is None and end["exception"] is exc_info.value


def test_shutdown_callbacks_fire_for_each_idempotent_call():
    callback = RecordingCallback()
    interpreter = EryxInterpreter(callbacks=[callback])
    interpreter.shutdown()
    interpreter.shutdown()
    starts, ends = events_for(callback, "shutdown_start"), events_for(callback, "shutdown_end")
    assert len(starts) == len(ends) == 2
    assert [event["call_id"] for event in starts] == [event["call_id"] for event in ends]
    assert all(event["outputs"] is None and event["exception"] is None for event in ends)


def test_real_interpreter_callbacks_preserve_lazy_startup_tool_nesting_and_final_output():
    """A lazy start inside execute() reports startup events, nested under that execute.
    Before: no `on_interpreter_startup_*` at all."""
    observed = []
    global_callback = RecordingCallback("global", observed)
    instance_callback = RecordingCallback("instance", observed)
    with dspy.context(callbacks=[global_callback]):
        with EryxInterpreter(tools={"echo": lambda value: value}, callbacks=[instance_callback]) as interpreter:
            assert interpreter.execute("print(echo(value=payload))", variables={"payload": "first"}) == "first\n"
            final_output = interpreter.execute("SUBMIT('done')")

    assert final_output == FinalOutput({"output": "done"})
    expected_handlers = ["execute_start", "startup_start", "startup_end", "tool_start", "tool_end", "execute_end",
                         "execute_start", "execute_end", "shutdown_start", "shutdown_end"]
    assert [event["handler"] for event in global_callback.events] == expected_handlers
    assert [event["handler"] for event in instance_callback.events] == expected_handlers
    assert observed == [(source, handler) for handler in expected_handlers for source in ("global", "instance")]
    first_execute, startup_start, startup_end, tool_start, tool_end, first_end = instance_callback.events[:6]
    second_execute, second_end, shutdown_start, shutdown_end = instance_callback.events[6:]
    assert first_execute["inputs"] == {"code": "print(echo(value=payload))", "variables": {"payload": "first"}}
    assert startup_start["inputs"] == {}
    assert startup_start["parent_call_id"] == first_execute["call_id"]
    assert tool_start["parent_call_id"] == first_execute["call_id"]
    assert startup_end["call_id"] == startup_start["call_id"]
    assert tool_end["call_id"] == tool_start["call_id"] and tool_end["outputs"] == "first"
    assert first_end["call_id"] == first_execute["call_id"] and first_end["outputs"] == "first\n"
    assert second_end["call_id"] == second_execute["call_id"] and second_end["outputs"] is final_output
    assert shutdown_end["call_id"] == shutdown_start["call_id"]


def test_explicit_startup_callbacks_fire_for_each_idempotent_start_call():
    callback = RecordingCallback()
    interpreter = EryxInterpreter(callbacks=[callback])
    interpreter.start()
    interpreter.start()
    interpreter.shutdown()
    starts, ends = events_for(callback, "startup_start"), events_for(callback, "startup_end")
    assert len(starts) == len(ends) == 2
    assert all(event["inputs"] == {} for event in starts)
    assert all(event["parent_call_id"] is None for event in starts)
    assert [event["call_id"] for event in starts] == [event["call_id"] for event in ends]
    assert all(event["outputs"] is None and event["exception"] is None for event in ends)


def test_real_interpreter_execute_error_is_reported_and_propagated():
    callback = RecordingCallback()
    with EryxInterpreter(callbacks=[callback]) as interpreter:
        with pytest.raises(CodeExecutionError) as exc_info:
            interpreter.execute("raise ValueError('boom')")
    execute_end = events_for(callback, "execute_end")[0]
    assert execute_end["outputs"] is None and execute_end["exception"] is exc_info.value
    assert events_for(callback, "startup_end")[0]["exception"] is None
    assert events_for(callback, "shutdown_end")[0]["exception"] is None
