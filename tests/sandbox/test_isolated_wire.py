"""What an IsolatedSandbox's worker sends back (stdout, submission, variables, errors, host
calls) is carried, or reported, exactly as an in-process Sandbox reports it."""

from __future__ import annotations

import time

import dspy
import pytest

from dspy_rlm import RLM
from dspy_rlm.sandbox import SandboxLimits
from dspy_rlm.sandbox.jsonsafe import dumps_any
from tests.helpers import steps

pytestmark = pytest.mark.usefixtures("eryx_factory")


def _forged_submission(depth: int) -> str:
    """Guest code whose step reports a submission nested `depth` deep. SUBMIT itself stops
    at the guest's recursion limit, but model code can rewrite the runner's report, so the
    host must cope with whatever JSON text it holds."""
    return (
        "g = _rlm_submit.__globals__\n"
        "real = g['_finish']\n"
        "def forged(exc, syntax, seal):\n"
        "    g['_finish'] = real  # this step only\n"
        "    real(exc, syntax, seal)\n"
        f"    g['G']['__rlm_result__']['submission'] = '[' * {depth} + ']' * {depth}\n"
        "g['_finish'] = forged\n"
    )


@pytest.fixture(params=["in process", "isolated"])
def any_sandbox(request, make, make_isolated):
    return make if request.param == "in process" else make_isolated


@pytest.mark.parametrize("depth", [3_000, 9_000])
def test_a_deeply_nested_submission_comes_back_whole_in_both_modes(any_sandbox, depth):
    result = any_sandbox().run(_forged_submission(depth))
    assert (result.error, result.submitted) == (None, True)
    assert dumps_any(result.submission) == "[" * depth + "]" * depth


def test_a_submission_too_deep_to_parse_is_a_crash_in_both_modes(any_sandbox):
    result = any_sandbox().run(_forged_submission(50_000))
    assert result.error_kind == "crash" and result.restarted and not result.submitted


def test_a_host_result_json_cannot_carry_is_reported_to_the_guest_at_once_in_both_modes(any_sandbox):
    """A 5,000-digit int is over Python's int/str limit: the guest gets the ValueError at
    once, as in process, rather than waiting for the callback timeout."""
    sandbox = any_sandbox({}, {"huge": lambda: 10 ** 5_000}, limits=SandboxLimits(callback_timeout_s=60))
    started = time.perf_counter()
    result = sandbox.run("x = huge()")
    assert time.perf_counter() - started < 20  # not the 60 s callback timeout
    assert result.error_kind == "exception"
    assert "huge: ValueError: Exceeds the limit (4300 digits)" in result.error


def test_a_deeply_nested_host_call_argument_reaches_the_host_function_in_both_modes(any_sandbox):
    """The guest's wrapper refuses arguments nested over 64 deep, but code can call the
    runtime's `invoke` directly: whatever JSON the guest sends, the host function gets."""
    seen = []
    sandbox = any_sandbox({}, {"probe": lambda value: seen.append(dumps_any(value)) or "ok"})
    depth = 5_000
    code = (
        "import json\n"
        f"text = '[[' + '[' * {depth} + ']' * {depth} + '], {{}}]'\n"
        "reply = await invoke('__rlm_fn_probe', payload=text)\n"
        "print(json.loads(reply))\n"
    )
    result = sandbox.run(code)
    assert result.error is None, result.error
    assert result.stdout == "ok\n" and seen == ["[" * depth + "]" * depth]


def test_a_deep_submission_ends_an_isolated_rlm_call_with_its_trajectory():
    """The issue's case end to end: the call gets a trajectory, whatever it makes of the value."""
    lm = steps(_forged_submission(3_000), "SUBMIT(answer='fine')")
    with dspy.context(lm=lm):
        result = RLM("context -> answer", isolate_process=True, max_iters=3)(context="x")
    assert result.answer == "fine" and len(result.trajectory) == 2
    first = result.trajectory[0]
    assert first["error"] == "output" and "must map output names to values" in first["output"]  # a list


def test_a_host_call_argument_too_big_to_copy_is_a_memory_error_the_model_can_act_on(any_sandbox):
    """wasmtime caps what one host call copies (about 128 MiB on pyeryx 0.11) well below the
    memory cap; the step says so, instead of reporting a crash of unknown cause."""
    limits = SandboxLimits(memory_bytes=2048 * 2**20)
    sandbox = any_sandbox({}, {"measure": len}, limits=limits)
    result = sandbox.run("big = 'x' * (150 * 2**20)\nprint(measure(big))")
    assert result.error_kind == "memory" and result.restarted
    assert result.error.startswith("MemoryError:") and "host function call" in result.error
    assert "pass less" in result.error
    assert sandbox.run("print(1)").stdout == "1\n"
