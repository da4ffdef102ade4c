"""Sandbox.set_inputs: inputs added or replaced after the guest started."""

from __future__ import annotations

import os

import pytest

from dspy_rlm.errors import InputsNotLoaded, SandboxClosed
from dspy_rlm.sandbox import SandboxLimits

pytestmark = pytest.mark.usefixtures("eryx_factory")


def test_added_and_replaced_inputs_arrive_and_are_not_model_variables(make):
    sb = make({"a": "first"})
    assert sb.run("mine = 1").error is None
    sb.set_inputs({"a": "second", "d": {"k": [1, 2]}, "n": 3})
    r = sb.run("print(a, d, n, mine)")
    assert r.error is None and r.stdout == "second {'k': [1, 2]} 3 1\n"
    assert sb.variables == ["mine"]
    # Only the current inputs' files stay in the mount.
    assert sorted(os.listdir(sb._folder)) == ["v1.a.txt", "v1.d.json", "v1.n.json"]


def test_a_model_variable_can_become_an_input(make):
    sb = make()
    sb.run("x = 'model'; y = 2")
    sb.set_inputs({"x": "input"})
    assert sb.variables == ["y"]
    assert sb.run("print(x)").stdout == "input\n"


def test_inputs_set_later_are_remounted_after_a_restart(make):
    sb = make({"a": "old"}, limits=SandboxLimits(step_timeout_s=1.0))
    sb.set_inputs({"a": "new", "b": "added"})
    r = sb.run("while True: pass")
    assert r.restarted and r.error_kind == "timeout"
    assert sb.run("print(a, b)").stdout == "new added\n"


def test_names_are_checked(make):
    sb = make({}, {"tool": lambda: 1})
    for bad in ("not valid", "class", "__dunder", "_rlm_submit"):
        with pytest.raises(ValueError):
            sb.set_inputs({bad: 1})
    with pytest.raises(ValueError, match="both as an input and as a function"):
        sb.set_inputs({"tool": 1})
    with pytest.raises(TypeError, match="cannot carry"):
        sb.set_inputs({"thing": object()})


def test_an_input_over_the_memory_cap_restarts_with_the_previous_inputs(make):
    sb = make({"keep": "kept"}, limits=SandboxLimits(memory_bytes=64 * 2**20))
    sb.run("mine = 1")
    with pytest.raises(InputsNotLoaded, match="could not load the inputs"):
        sb.set_inputs({"big": "x" * (100 * 2**20)})
    r = sb.run("print(keep, 'big' in globals(), 'mine' in globals())")
    assert r.stdout == "kept False False\n"


def test_closed_sandbox_refuses(make):
    sb = make()
    sb.close()
    with pytest.raises(SandboxClosed):
        sb.set_inputs({"a": 1})
    sb.set_inputs({})  # nothing to do is not an error
