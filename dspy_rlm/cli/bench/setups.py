"""The setups the benchmark compares, and the in-process `exec` floors.

* `a`: `dspy.RLM` on its default Deno + Pyodide interpreter (run offline, see deno.py);
* `b`: `dspy.RLM` on `dspy_rlm.EryxInterpreter`;
* `c`: `dspy_rlm.RLM`;
* `d`: `dspy.RLM` on `ExecInterpreter`: model code `exec`'d in the host process, no
  sandbox, variables assigned directly. The floor of the comparison: what DSPy itself costs.
* `c_floor`: `dspy_rlm.RLM` with its sandbox replaced by `ExecSandbox` (same loop,
  in-process `exec`). The floor of the core suite.

Only the benchmark uses these floors: they isolate nothing and must not run untrusted code.
"""

from __future__ import annotations

import builtins
import io
import threading
import time
import traceback
from typing import Any, Callable

SETUPS = {
    "a": "dspy.RLM + Deno/Pyodide",
    "b": "dspy.RLM + EryxInterpreter",
    "c": "dspy_rlm.RLM",
    "d": "dspy.RLM + in-process exec (floor)",
    "c_floor": "dspy_rlm.RLM on in-process exec (floor)",
}
# Columns of each suite's table; c_floor runs only the per-iteration workload in `compare`.
SUITES = {"compare": ["a", "b", "c", "d", "c_floor"], "core": ["c", "c_floor"]}


def build_module(setup: str, signature: str, *, max_iters: int, max_llm_calls: int, sub_lm: Any,
                 max_concurrency: int | None = None) -> Any:
    """The RLM module of `setup` (imports stay inside: workers import only what they run)."""
    import dspy

    if setup in ("c", "c_floor"):
        from dspy_rlm import RLM

        extra = {"max_concurrency": max_concurrency} if max_concurrency else {}
        if setup == "c_floor":
            extra["sandbox_factory"] = ExecSandbox
        return RLM(signature, max_iters=max_iters, max_llm_calls=max_llm_calls, sub_lm=sub_lm, **extra)
    if setup == "a":
        from dspy_rlm.cli.bench.deno import OfflinePythonInterpreter as factory
    elif setup == "b":
        from dspy_rlm import EryxInterpreter as factory
    elif setup == "d":
        factory = ExecInterpreter
    else:
        raise ValueError(f"unknown setup {setup!r}; choose from {sorted(SETUPS)}")
    return dspy.RLM(signature, max_iters=max_iters, max_llm_calls=max_llm_calls, sub_lm=sub_lm,
                    interpreter_factory=factory)


class _Submitted(BaseException):
    def __init__(self, payload: Any) -> None:
        super().__init__()
        self.payload = payload


def _printer(buffer: io.StringIO) -> Callable[..., None]:
    def _print(*args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("file", buffer)
        builtins.print(*args, **kwargs)

    return _print


class ExecInterpreter:
    """A `CodeInterpreter` that `exec`s code in the host process: the benchmark's floor."""

    execution_instructions = "Python runs in the host process with no sandbox (benchmark floor)."

    def __init__(self) -> None:
        self.tools: dict[str, Callable[..., Any]] = {}
        self.output_fields: list[dict] | None = None
        self._globals: dict[str, Any] | None = None
        self._closed = False

    def start(self) -> None:
        from dspy.primitives.code_interpreter import CodeInterpreterError

        if self._closed:
            raise CodeInterpreterError("shut down")
        if self._globals is None:
            self._globals = {"__name__": "__rlm__", "__builtins__": builtins}

    def execute(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        from dspy.primitives.code_interpreter import CodeExecutionError, FinalOutput

        self.start()
        scope = self._globals
        scope.update(self.tools)  # tools are globals (the dspy facade shim relies on it)
        scope.update(variables or {})
        names = [f["name"] for f in (self.output_fields or [{"name": "output"}])]

        def submit(*args: Any, **kwargs: Any) -> None:
            raise _Submitted({**dict(zip(names, args)), **kwargs})

        out = io.StringIO()
        scope["SUBMIT"], scope["print"] = submit, _printer(out)
        try:
            exec(compile(code, "<step>", "exec"), scope)
        except _Submitted as done:
            return FinalOutput(done.payload)
        except SyntaxError:
            raise
        except Exception as exc:
            raise CodeExecutionError(f"{type(exc).__name__}: {exc}") from None
        return out.getvalue() or None

    def shutdown(self) -> None:
        self._closed = True
        self._globals = None


class ExecSandbox:
    """A `dspy_rlm.sandbox.CodeSandbox` that `exec`s code in the host process: the core suite's floor."""

    def __init__(self, inputs: dict[str, Any], functions: dict[str, Callable[..., Any]] | None = None, *,
                 setup_code: str = "", **_: Any) -> None:
        self._globals: dict[str, Any] = {"__name__": "__rlm__", "__builtins__": builtins}
        self._globals.update(inputs)
        self._globals.update(functions or {})
        self._globals["_rlm_submit"] = self._submit
        exec(compile(setup_code, "<setup>", "exec"), self._globals)
        self._baseline = set(self._globals)
        self._lock = threading.Lock()

    @staticmethod
    def _submit(payload: Any = None) -> None:
        raise _Submitted(payload)

    @property
    def variables(self) -> list[str]:
        return [k for k in self._globals if k not in self._baseline and not k.startswith("_")]

    def set_inputs(self, inputs: dict[str, Any]) -> None:
        self._globals.update(inputs)
        self._baseline |= set(inputs)

    def run(self, code: str, timeout_s: float | None = None, **_: Any) -> Any:
        from dspy_rlm.sandbox import StepResult

        start = time.perf_counter()
        out = io.StringIO()
        with self._lock:
            self._globals["print"] = _printer(out)
            try:
                exec(compile(code, "<step>", "exec"), self._globals)
            except _Submitted as done:
                return StepResult(stdout=out.getvalue(), submitted=True, submission=done.payload,
                                  seconds=time.perf_counter() - start)
            except SyntaxError as exc:
                return StepResult(error=f"SyntaxError: {exc}", error_kind="syntax", seconds=time.perf_counter() - start)
            except Exception:
                return StepResult(stdout=out.getvalue(), error=traceback.format_exc(limit=-1), error_kind="exception",
                                  seconds=time.perf_counter() - start)
            finally:
                self._globals.pop("print", None)
        return StepResult(stdout=out.getvalue(), seconds=time.perf_counter() - start)

    def close(self) -> None:
        self._globals.clear()
