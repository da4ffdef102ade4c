"""A pytest plugin that runs DSPy's own tests on a chosen interpreter, the test bodies unchanged.

    DSPY_SUITE_INTERPRETER=eryx python -m pytest -p tools.dspy_suite.plugin --deno tests/...

`scripts/dspy_tests.sh DSPY_CHECKOUT` runs the interpreter-related test files both ways.

* `eryx`: `EryxInterpreter` wherever DSPy's tests would get `PythonInterpreter`:
  `dspy.configure(interpreter_factory=...)` before each test, and `PythonInterpreter(...)` itself
  (called by a test, a fixture or DSPy's default factory) returns a `SuiteInterpreter`, an
  `EryxInterpreter` taking `PythonInterpreter`'s arguments (its Deno permission options raise,
  naming themselves). `deno` is on PATH (DSPy skips
  some tests without it), but a test that still starts Deno fails loudly (`_ensure_deno_process`
  raises), so no pass can come from Deno.
* `deno`: DSPy's `PythonInterpreter` as it is, on the offline Deno + Pyodide of `dspy-rlm bench`
  (deno from npm on PATH, DENO_DIR with Pyodide; the runner's one deno.land import is mapped to a
  local port of it by an import map added to the default command).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import dspy
import pytest
from dspy.primitives import python_interpreter
from dspy.primitives.code_interpreter import CodeInterpreterError

from dspy_rlm import EryxInterpreter

MODE = os.environ.get("DSPY_SUITE_INTERPRETER", "eryx")
REAL = python_interpreter.PythonInterpreter
_DENO_ONLY = ("deno_command", "enable_read_paths", "enable_write_paths", "enable_env_vars", "enable_network_access")


class SuiteInterpreter(EryxInterpreter):
    """`EryxInterpreter` with `dspy.PythonInterpreter`'s constructor."""

    def __init__(self, deno_command=None, enable_read_paths=None, enable_write_paths=None, enable_env_vars=None,
                 enable_network_access=None, sync_files=True, tools=None, output_fields=None, callbacks=None):
        given = locals()
        asked = [name for name in _DENO_ONLY if given[name]]
        if asked:
            raise NotImplementedError(f"EryxInterpreter has no Deno options: {', '.join(asked)}")
        super().__init__(tools=tools, output_fields=output_fields, callbacks=callbacks)


def _suite_instead(cls, *args, **kwargs):
    if cls is REAL:
        return SuiteInterpreter(*args, **kwargs)  # not a REAL instance, so REAL.__init__ does not run
    return object.__new__(cls)


def _no_deno(self):
    raise CodeInterpreterError("dspy_suite (eryx run): this test started Deno, which the eryx run does not use")


def pytest_configure(config: pytest.Config) -> None:
    if MODE == "eryx":
        # Every construction of PythonInterpreter (by a test, a fixture or DSPy's own default factory)
        # makes a SuiteInterpreter; DSPy's names stay bound to the real class, so its own checks hold.
        REAL.__new__ = _suite_instead
        REAL._ensure_deno_process = _no_deno
        _deno_on_path()  # DSPy skips some tests when `deno` is not on PATH; none of them may start it here
    elif MODE == "deno":
        _use_offline_deno()
    else:
        raise pytest.UsageError(f"DSPY_SUITE_INTERPRETER must be 'eryx' or 'deno', got {MODE!r}")


def _deno_on_path():
    from dspy_rlm.cli.bench.deno import ensure_deno

    runtime, why = ensure_deno(say=lambda text: print(f"dspy_suite: {text}", file=sys.stderr))
    if runtime is None:
        raise pytest.UsageError(f"offline Deno is not available: {why}")
    os.environ["PATH"] = f"{Path(runtime.deno).parent}{os.pathsep}{os.environ['PATH']}"
    return runtime


def _use_offline_deno() -> None:
    runtime = _deno_on_path()
    os.environ.update({"DENO_DIR": runtime.deno_dir, "DENO_NO_UPDATE_CHECK": "1"})
    original = REAL.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self._uses_default_deno_command:  # the import map, right after `deno run`
            self.deno_command[2:2] = [f"--import-map={runtime.import_map}"]

    REAL.__init__ = init


@pytest.fixture(autouse=True)
def _interpreter_factory():
    if MODE == "eryx":
        dspy.configure(interpreter_factory=SuiteInterpreter)
    yield
