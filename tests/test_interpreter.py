"""EryxInterpreter: DSPy's CodeInterpreter protocol on the eryx sandbox, and dspy.RLM on it.

The first half ports the interpreter conformance checks of cmpnd-ai/dspy-interpreters
(check ids in the test names); the second runs dspy.RLM end to end with a scripted LM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

import dspy
import pytest
from dspy.primitives.code_interpreter import CodeExecutionError, CodeInterpreter, CodeInterpreterError, FinalOutput
from dspy.primitives.facade import CALL_TOOL, CONSTRUCT_TOOL

from dspy_rlm import EryxInterpreter, ScriptedLM
from dspy_rlm.sandbox import Sandbox
from tests.helpers import step

pytestmark = pytest.mark.usefixtures("eryx_factory")


@pytest.fixture
def interp():
    made = []

    def build(**kwargs):
        made.append(EryxInterpreter(**kwargs))
        return made[-1]

    yield build
    for i in made:
        i.shutdown()


def configure(i, tools, output_fields=None):
    """What dspy.RLM does to an interpreter it got from the factory."""
    i.tools.clear()
    i.tools.update(tools)
    i.output_fields = output_fields


# ------------------------------------------------------------------ conformance (interpreter level)


def test_protocol_public_shape_and_stable_instructions(interp):
    i = interp()
    assert isinstance(i, CodeInterpreter) and isinstance(i.tools, dict)
    assert isinstance(EryxInterpreter.execution_instructions, str) and EryxInterpreter.execution_instructions.strip()
    assert i.execution_instructions == i.execution_instructions == EryxInterpreter.execution_instructions
    assert "no network" in i.execution_instructions and "minutes" in i.execution_instructions


def test_lifecycle_lazy_idempotent_start_and_output(interp):
    i = interp()
    i.start()
    i.start()
    assert i.execute("40 + 2") == "42\n"
    assert "marker" in i.execute("print('marker')")
    assert i.execute("x = 1") is None
    assert i.execute("print('a'); 'b'") == "b"  # a str value is the output, as on Pyodide
    assert i.execute("print('a'); [1]") == "a\n[1]\n"  # other values: printed after what was printed


def test_state_persists_and_fresh_instances_are_isolated(interp):
    first, second = interp(), interp()
    first.execute("remembered = 41")
    assert first.execute("remembered + 1") == "42\n"
    assert first.execute("injected + 2", {"injected": 40}) == "42\n"
    with pytest.raises(CodeExecutionError, match="NameError"):
        second.execute("remembered")


def test_errors_are_recoverable(interp):
    i = interp()
    with pytest.raises(SyntaxError):
        i.execute("if")
    with pytest.raises(CodeExecutionError, match="ZeroDivisionError"):
        i.execute("print('before'); 1 / 0")
    # Deno/Pyodide loses its session on these; here they are ordinary errors.
    with pytest.raises(CodeExecutionError, match="KeyError"):
        i.execute("{}[:3]")
    with pytest.raises(CodeExecutionError, match="ValueError"):
        i.execute("raise ValueError(object())")
    assert i.execute("21 * 2") == "42\n"


def test_output_printed_before_an_error_reaches_the_model(interp):
    with pytest.raises(CodeExecutionError) as caught:
        interp().execute("print('partial')\nraise RuntimeError('boom')")
    assert str(caught.value).startswith("partial\n") and "RuntimeError: boom" in str(caught.value)


def test_tools_round_trip_keyword_and_positional(interp):
    i = interp()
    seen = []

    def add(*, left: int, right: int) -> dict:
        seen.append((left, right))
        return {"value": left + right}

    def join(a: str, b: str = "-") -> str:
        return a + b

    configure(i, {"add": add, "join": join})
    assert i.execute("add(left=19, right=23)['value']") == "42\n"
    assert i.execute("print(join('x'), join('x', 'y'), join(a='p', b='q'))") == "x- xy pq\n"
    assert seen == [(19, 23)]
    with pytest.raises(CodeExecutionError, match="TypeError"):
        i.execute("add(1, 2)")


def test_tools_added_later_work_and_removed_tools_are_revoked(interp):
    i = interp()
    i.execute("kept = 42")
    configure(i, {"old_tool": lambda: 1})
    assert i.execute("old_tool()") == "1\n"
    configure(i, {"new_tool": lambda: 2})
    assert i.execute("kept + new_tool()") == "44\n"
    with pytest.raises(CodeExecutionError, match="not available"):
        i.execute("old_tool()")


def test_async_tools_run_to_completion(interp):
    async def slow_upper(text: str) -> str:
        await asyncio.sleep(0.01)
        return text.upper()

    i = interp(tools={"slow_upper": slow_upper})
    assert i.execute("def shout(t):\n    return slow_upper(t) + '!'\nprint(shout('hi'))") == "HI!\n"


def test_submit_typed_outputs(interp):
    i = interp()
    configure(i, {})
    one = i.execute("SUBMIT(42)")
    assert isinstance(one, FinalOutput) and one.output == {"output": 42}
    configure(i, {}, [{"name": "answer", "type": "str"}, {"name": "score", "type": "int"}])
    many = i.execute("SUBMIT(answer='yes', score=42)")
    assert isinstance(many, FinalOutput) and many.output == {"answer": "yes", "score": 42}
    assert i.execute("SUBMIT('no', 1)").output == {"answer": "no", "score": 1}
    with pytest.raises(CodeExecutionError, match="missing required argument"):
        i.execute("SUBMIT('missing')")
    # Values JSON has no form for are converted instead of killing the session.
    odd = i.execute("import datetime\nSUBMIT(answer={3, 1, 2}, score=datetime.date(2026, 1, 2))")
    assert odd.output == {"answer": [1, 2, 3], "score": "2026-01-02"}
    assert i.execute("6 * 7") == "42\n"


def test_submit_terminates_execution(interp):
    calls = []
    i = interp(tools={"after_submit": lambda: calls.append(1)})
    assert isinstance(i.execute("try:\n    SUBMIT(42)\nexcept Exception:\n    pass\nafter_submit()"), FinalOutput)
    assert calls == []


def test_shutdown_is_terminal(interp):
    i = interp()
    i.execute("x = 1")
    i.shutdown()
    i.shutdown()
    for operation in (i.start, lambda: i.execute("1")):
        with pytest.raises(CodeInterpreterError):
            operation()


def test_variables_are_loaded_only_when_they_change(interp, monkeypatch):
    loads = []
    original = Sandbox.set_inputs
    monkeypatch.setattr(Sandbox, "set_inputs", lambda self, values: (loads.append(sorted(values)), original(self, values)))
    i = interp()
    context = "x" * 1_000_000
    assert i.execute("print(len(context), q)", {"context": context, "q": "a"}) == "1000000 a\n"
    for _ in range(3):
        i.execute("pass", {"context": context, "q": "a"})
    i.execute("pass", {"context": "".join(["x"] * 1_000_000), "q": "a"})  # equal, another object
    assert loads == [["context", "q"]]  # once, after the lazy start
    assert i.execute("print(q)", {"context": context, "q": "b"}) == "b\n"
    assert loads == [["context", "q"], ["q"]]


def test_unsupported_variables_and_names(interp):
    i = interp()
    with pytest.raises(CodeInterpreterError, match="Invalid variable name"):
        i.execute("pass", {"not a name": 1})
    with pytest.raises(CodeInterpreterError, match="Unsupported value type"):
        i.execute("pass", {"thing": object()})


def test_timeouts_restart_the_guest_and_keep_the_inputs():
    i = EryxInterpreter.factory(step_timeout=1.0)()
    try:
        i.tools["helper"] = lambda: "ok"
        i.execute("mine = 1", {"context": "ctx"})
        with pytest.raises(CodeExecutionError, match="TimeoutError") as caught:
            i.execute("while True: pass", {"context": "ctx"})
        assert "variables lost: mine" in str(caught.value)
        assert i.execute("print(context, helper())", {"context": "ctx"}) == "ctx ok\n"
    finally:
        i.shutdown()


def test_execute_from_inside_a_tool_is_refused(interp):
    i = interp()
    i.tools["reenter"] = lambda: i.execute("1")
    with pytest.raises(CodeExecutionError, match="cannot execute code from inside"):
        i.execute("reenter()")


def test_factory_carries_its_instructions():
    factory = EryxInterpreter.factory(step_timeout=30, max_memory_mb=512)
    assert "30 seconds" in factory.execution_instructions and "512 MiB" in factory.execution_instructions
    made = factory()
    assert isinstance(made, EryxInterpreter) and made.limits.step_timeout_s == 30
    made.shutdown()


# ------------------------------------------------------------------ dspy.RLM end to end


def scripted(*codes):
    return ScriptedLM([step(code) for code in codes])


class Recording:
    """A factory that keeps the interpreters it made."""

    def __init__(self, factory=EryxInterpreter):
        self.factory = factory
        self.made = []
        self.execution_instructions = getattr(factory, "execution_instructions", "")

    def __call__(self):
        self.made.append(self.factory())
        return self.made[-1]


def test_rlm_real_consumer_flow_sync_style_llm_query_tools_and_typed_submit():
    host_calls = []

    def add(left: int, right: int) -> int:
        host_calls.append((left, right))
        return left + right

    async def fetch(key: str) -> str:
        return f"value-of-{key}"

    factory = Recording()
    sub = ScriptedLM(lambda request: "sub:" + request.last)
    lm = scripted(
        "def ask(p):\n    return llm_query(p)\nparts = [ask(f'q{i}') for i in range(3)]\nprint(parts)",
        "answers = llm_query_batched(['a', 'b'])\ntotal = add(20, right=22)\nprint(answers, total, fetch('k'))",
        "SUBMIT(answer='x', n='not a number')",
        "SUBMIT(answer=f'{answers[0]}|{parts[2]}', n=total)",
    )
    rlm = dspy.RLM("context, query -> answer: str, n: int", max_iters=5, tools=[add, fetch], sub_lm=sub,
                   interpreter_factory=factory)
    with dspy.context(lm=lm):
        result = rlm(context="some text", query="q?")
    assert (result.answer, result.n) == ("sub:a|sub:q2", 42)
    outputs = [entry["output"] for entry in result.trajectory]
    assert outputs[0] == "['sub:q0', 'sub:q1', 'sub:q2']\n"
    assert outputs[1] == "['sub:a', 'sub:b'] 42 value-of-k\n"
    assert outputs[2].startswith("[Type Error] n: expected int")
    assert host_calls == [(20, 22)]
    assert sorted(r.last for r in sub.requests) == ["a", "b", "q0", "q1", "q2"]
    # One interpreter per call, shut down afterwards; the runtime is described in the prompt.
    assert len(factory.made) == 1 and factory.made[0]._closed
    assert "Execution environment:" in lm.requests[0].system
    assert "Python 3.14 runs in a WebAssembly sandbox" in lm.requests[0].system


def test_rlm_injects_its_inputs_once(monkeypatch):
    loads = []
    original = Sandbox.set_inputs
    monkeypatch.setattr(Sandbox, "set_inputs", lambda self, values: (loads.append(sorted(values)), original(self, values)))
    built = []
    original_init = Sandbox.__init__

    def init(self, inputs, *args, **kwargs):
        built.append(sorted(inputs))
        original_init(self, inputs, *args, **kwargs)

    monkeypatch.setattr(Sandbox, "__init__", init)
    lm = scripted("context = 'changed by the model'", "print(len(context))", "x = 1", "SUBMIT(answer=str(len(context)))")
    rlm = dspy.RLM("context -> answer", max_iters=4, interpreter_factory=EryxInterpreter)
    with dspy.context(lm=lm):
        result = rlm(context="y" * 100_000)
    # Loaded when the sandbox started (dspy.RLM calls start() first), then once by set_inputs
    # (after the facade's host token, which dspy.RLM passes with the shim).
    assert built == [[]] and loads == [["_rlm_fv__dspy_host_token"], ["context"]]
    # Not re-sent each step, so the model's own assignment stands (PythonInterpreter would overwrite it).
    assert result.answer == str(len("changed by the model"))


def test_rlm_errors_are_recoverable_and_the_facade_survives_a_restart(caplog):
    lm = scripted(
        "import dspy\nprint(type(dspy.Predict('q -> a')).__name__)",
        "print('partial')\n{}[:3]",
        "while True:\n    pass",
        "import dspy\nprint(type(dspy.Predict('q -> a')).__name__)\nSUBMIT(answer='done')",
    )
    factory = Recording(EryxInterpreter.factory(step_timeout=1.0))
    rlm = dspy.RLM("context -> answer", max_iters=5, interpreter_factory=factory)
    with caplog.at_level(logging.WARNING, logger="dspy.predict.rlm"), dspy.context(lm=lm):
        result = rlm(context="abc")
    assert result.answer == "done"
    outputs = [entry["output"] for entry in result.trajectory]
    assert outputs[0] == "_DspyPending\n"  # DSPy's shim is the sandbox's `dspy`
    assert outputs[1].startswith("[Error] partial\n") and "KeyError" in outputs[1]
    assert "TimeoutError" in outputs[2] and "sandbox restarted" in outputs[2]
    assert "variables lost: no" in outputs[2] or "dspy" not in outputs[2].split("variables lost")[-1]
    assert "sub-agents are unavailable" not in caplog.text
    # The facade stays: its tools, its sub-agent instructions, and (after the restart) its shim.
    assert CONSTRUCT_TOOL in factory.made[0].tools and CALL_TOOL in factory.made[0].tools
    assert "Sub-agents (dspy)" in lm.requests[0].system


def test_rlm_interpreter_is_shut_down_when_the_call_fails():
    factory = Recording()
    lm = ScriptedLM([])  # the first request fails
    rlm = dspy.RLM("context -> answer", max_iters=2, interpreter_factory=factory)
    with dspy.context(lm=lm), pytest.raises(Exception):
        rlm(context="abc")
    assert len(factory.made) == 1 and factory.made[0]._closed


async def test_rlm_acall_on_eryx():
    lm = scripted("x = llm_query('p')", "SUBMIT(answer=x)")
    rlm = dspy.RLM("context -> answer", max_iters=3, sub_lm=ScriptedLM(["sub"]), interpreter_factory=EryxInterpreter)
    with dspy.context(lm=lm):
        result = await rlm.acall(context="abc")
    assert result.answer == "sub"


def test_rlm_on_an_isolated_eryx_interpreter_recovers_from_a_dead_worker():
    factory = EryxInterpreter.factory(isolate_process=True)
    made = []

    def kill_worker() -> str:
        os.kill(made[0]._sandbox._worker.process.pid, signal.SIGKILL)
        time.sleep(5)  # the step never gets an answer
        return "unreachable"

    def tracked():
        made.append(factory())
        return made[-1]

    lm = scripted("x = llm_query('p')", "kill_worker()", "SUBMIT(answer=f'{len(context)}:{x}')",
                  "SUBMIT(answer=str(len(context)))")
    rlm = dspy.RLM("context -> answer", max_iters=4, sub_lm=ScriptedLM(["sub"]), tools=[kill_worker],
                   interpreter_factory=tracked)
    with dspy.context(lm=lm):
        result = rlm(context="abc")
    assert "SandboxCrash" in result.trajectory[1]["output"]
    assert "variables lost: x" in result.trajectory[1]["output"]
    assert "NameError" in result.trajectory[2]["output"]  # x went with the worker; the inputs stayed
    assert result.answer == "3"


def test_rlm_concurrent_calls_in_threads():
    def answer(request):
        iteration = int(request.field("iteration").split("/")[0])
        code = "n = len(context)" if iteration == 1 else "SUBMIT(answer=str(n))"
        return step(code)

    rlm = dspy.RLM("context -> answer", max_iters=3, interpreter_factory=EryxInterpreter)
    results = {}

    def run(k):
        with dspy.context(lm=ScriptedLM(answer)):
            results[k] = rlm(context="z" * k).answer

    threads = [threading.Thread(target=run, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: str(k) for k in range(1, 5)}
