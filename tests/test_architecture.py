"""The seams of the library: the sandbox protocol, the run configuration, and the one error tree."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import dspy
import pytest

import dspy_rlm
from dspy_rlm import errors
from dspy_rlm.cli.bench.setups import ExecSandbox
from dspy_rlm.sandbox import CodeSandbox, IsolatedSandbox, Sandbox, SandboxLimits, StepResult
from dspy_rlm.sandbox.protocol import missing_members
from tests.helpers import steps

README = Path(__file__).resolve().parents[1] / "README.md"


# ---------------------------------------------------------------------------- the public face

def test_the_public_names_import_from_the_package():
    from dspy_rlm import (  # noqa: F401
        RLM, EryxInterpreter, LimitExceeded, LMFailure, RLMError, SandboxCrash, ScriptedLM, SimulatedLM,
    )


def test_every_error_lives_in_one_tree_and_is_exported_and_drawn_in_the_readme():
    classes = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if obj.__module__ == errors.__name__]
    readme = README.read_text()
    assert len(classes) >= 15
    for cls in classes:
        assert issubclass(cls, errors.DSPyRLMError), cls
        assert getattr(dspy_rlm, cls.__name__) is cls, f"{cls.__name__} is not exported from dspy_rlm"
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} is missing from the tree in errors' docstring"
        assert cls.__name__ in readme, f"{cls.__name__} is missing from the README's error tree"


def test_errors_that_end_a_call_carry_what_the_call_did():
    for cls in (errors.LimitExceeded, errors.LMFailure, errors.SandboxCrash):
        assert issubclass(cls, errors.RLMError)
    error = errors.SandboxCrash("gone", trajectory=[{"iteration": 1}], best_answer=None, usage={"root_calls": 1})
    assert error.trajectory == [{"iteration": 1}] and error.usage == {"root_calls": 1}


# ---------------------------------------------------------------------------- the sandbox protocol

@pytest.mark.parametrize("sandbox_class", [Sandbox, IsolatedSandbox, ExecSandbox])
def test_every_sandbox_satisfies_the_protocol(sandbox_class):
    assert missing_members(sandbox_class) == []


def test_an_eryx_sandbox_is_a_code_sandbox(make):
    assert isinstance(make({"context": "x"}), CodeSandbox)


class Recording:
    """A sandbox factory that builds the eryx sandbox and remembers how it was called."""

    def __init__(self):
        self.calls = []

    def __call__(self, inputs, functions, **options):
        self.calls.append((dict(inputs), sorted(functions), options))
        return Sandbox(inputs, functions, **options)


def test_rlm_runs_on_the_sandbox_factory_it_is_given():
    factory = Recording()
    rlm = dspy_rlm.RLM("context -> answer", sandbox_factory=factory, step_timeout=30)
    with dspy.context(lm=steps("SUBMIT(answer=str(len(context)))")):
        assert rlm(context="abcd").answer == "4"
    (inputs, functions, options), = factory.calls
    assert inputs == {"context": "abcd"} and "llm_query" in functions
    assert options["limits"] == SandboxLimits(step_timeout_s=30, memory_bytes=2048 * 2**20)
    assert "SUBMIT" in options["setup_code"] and options["max_output_chars"] == 10_000


@pytest.mark.parametrize("factory, problem", [
    (42, "must be a callable"),
    (ExecSandbox({}, {}), "a sandbox instance"),
    (type("NoRun", (), {"close": lambda self: None}), "lacks variables, run, set_inputs"),
])
def test_a_factory_that_cannot_build_sandboxes_is_refused_at_construction(factory, problem):
    with pytest.raises(TypeError, match=problem):
        dspy_rlm.RLM("context -> answer", sandbox_factory=factory)


def test_a_factory_that_returns_something_else_is_named_when_the_call_starts():
    rlm = dspy_rlm.RLM("context -> answer", sandbox_factory=lambda *args, **kwargs: object())
    with dspy.context(lm=steps("SUBMIT(answer='x')")), pytest.raises(TypeError, match="lacks variables, run"):
        rlm(context="x")


def test_the_default_factory_is_the_eryx_sandbox_or_the_isolated_one():
    assert dspy_rlm.RLM("context -> answer").sandbox_factory is Sandbox
    assert dspy_rlm.RLM("context -> answer", isolate_process=True).sandbox_factory is IsolatedSandbox
    with pytest.raises(ValueError, match="not both"):
        dspy_rlm.RLM("context -> answer", isolate_process=True, sandbox_factory=Sandbox)


# ---------------------------------------------------------------------------- a sandbox that cannot restart

def _unrestartable(inputs, functions, **options):
    """An eryx sandbox whose guest cannot boot again after its first failure."""
    sandbox = Sandbox(inputs, functions, **options)

    def fail_to_boot():
        raise RuntimeError("boot failed")

    sandbox._boot = fail_to_boot
    return sandbox


def test_the_sandbox_raises_a_typed_error_and_closes_when_it_cannot_restart():
    sandbox = _unrestartable({}, {}, limits=SandboxLimits(step_timeout_s=0.5), setup_code="", max_output_chars=100)
    with pytest.raises(errors.SandboxUnavailable, match="could not be restarted after a timeout"):
        sandbox.run("while True: pass")
    with pytest.raises(errors.SandboxClosed):
        sandbox.run("print(1)")


def test_a_sandbox_that_cannot_restart_ends_the_call_with_its_trajectory():
    rlm = dspy_rlm.RLM("context -> answer", sandbox_factory=_unrestartable, step_timeout=0.5)
    with dspy.context(lm=steps("x = 1\nprint(x)", "while True: pass", "SUBMIT(answer='never')")):
        with pytest.raises(dspy_rlm.SandboxCrash) as caught:
            rlm(context="abc")
    trajectory = caught.value.trajectory
    assert [step["iteration"] for step in trajectory] == [1, 2]
    assert trajectory[0]["output"] == "1" and trajectory[1]["error"] == "crash"
    assert isinstance(caught.value.__cause__, errors.SandboxUnavailable)
    assert caught.value.usage["root_calls"] == 2


# ---------------------------------------------------------------------------- the run configuration

def test_the_run_configuration_is_frozen_and_follows_swapped_collaborators():
    rlm = dspy_rlm.RLM("context -> answer", max_iters=3)
    config = rlm.config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_iters = 5
    assert rlm.config is config  # built once
    rlm.sub_lm = sub = dspy_rlm.ScriptedLM(["sub"])
    assert rlm.config.sub_lm is sub and rlm.config.max_iters == 3
    assert [name for name, _ in rlm.named_predictors()] == ["generate_code", "sub_query", "extract"]


def test_a_step_result_reads_as_the_model_sees_it():
    result = StepResult(stdout="out\n", error="ValueError: x", error_kind="exception", notes=["restored"])
    assert result.observation == "out\nValueError: x\n[restored]"
