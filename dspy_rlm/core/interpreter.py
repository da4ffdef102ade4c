"""`EryxInterpreter`: DSPy's `CodeInterpreter` protocol on this project's eryx sandbox.

`dspy.configure(interpreter_factory=EryxInterpreter)` (or `interpreter_factory=` per module) runs
the code of dspy.RLM, dspy.Flex, dspy.CodeAct and dspy.ProgramOfThought in
`dspy_rlm.sandbox.Sandbox` (CPython on WebAssembly, in-process) instead of Deno + Pyodide:

* tools (including the `llm_query` / `llm_query_batched` that dspy.RLM injects) are host
  functions, bound in the guest as plain functions over the sandbox's synchronous-call bridge,
  so code calls them from any frame, as on Pyodide (`facade=False`: eryx callbacks, reached by
  the sandbox's await rewrite);
* DSPy's sandbox `dspy` facade (dspy.Flex, and dspy.RLM sub-agents written with `import dspy`)
  runs unchanged, as setup code that a restart installs again (`interpreter_facade`);
* `variables` passed to `execute()` are loaded through the sandbox's read-only mount,
  and only when they change: dspy.RLM passes its inputs on every step, and a 10 MB
  context is then loaded once rather than re-sent as a literal each step;
* output is returned as printed (trailing newline kept); a last-line expression's str value is
  the output itself, as on Pyodide (`dspy.Flex` reads its result so), other values are printed
  as a REPL does (`interpreter_repl`); tool results reach the code converted by
  `dspy.PythonInterpreter`'s rules (`interpreter_values`), and callbacks see the raw result;
* a lazy start inside `execute()` goes through `start()`, so `on_interpreter_startup_*` fire;
* `SUBMIT(...)` returns `FinalOutput`; dspy.RLM validates the types on the host;
* a failing step raises `CodeExecutionError` (or `SyntaxError`) and the session goes on;
  timeouts and memory exhaustion restart the guest (the inputs come back).
"""

from __future__ import annotations

import contextvars
import functools
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from dspy.primitives.code_interpreter import CodeExecutionError, CodeInterpreterError, FinalOutput
from dspy.primitives.facade import is_reserved_sandbox_name
from dspy.utils.callback import with_callbacks

from dspy_rlm import settings
from dspy_rlm.core.interpreter_facade import SHIM_SETUP, facade_variables, install_code, is_facade_tool, sync_tools_code
from dspy_rlm.core.interpreter_repl import echo_setup, step_output, with_echo
from dspy_rlm.core.interpreter_values import keywords, loadable, tool_result
from dspy_rlm.core.outputs import termination_code
from dspy_rlm.errors import SandboxError
from dspy_rlm.sandbox import (
    IsolatedSandbox, Sandbox, SandboxLimits, StepResult, is_identifier, run_awaitable,
)

__all__ = ["EryxInterpreter"]

DEFAULT_STEP_TIMEOUT_S = settings.STEP_TIMEOUT_S
DEFAULT_MEMORY_MB = settings.MEMORY_MB
DEFAULT_OUTPUT_CHARS = settings.INTERPRETER_OUTPUT_CHARS

# Host function behind the guest wrappers of tools added after the sandbox started.
_DISPATCH = "_rlm_tool"
# The interpreter whose execute() is running in this context (tools run in a copy of it).
_EXECUTING: contextvars.ContextVar[EryxInterpreter | None] = contextvars.ContextVar("eryx_executing", default=None)
# Positional arguments of a tool call that no parameter name binds (a positional-only or *args tool):
# invoke_tool keeps DSPy's (tool_name, kwargs) signature, so its callbacks see what DSPy's see.
_POSITIONAL: contextvars.ContextVar[tuple] = contextvars.ContextVar("eryx_positional", default=())

_FACADE_OFF = (
    "The sandbox `dspy` facade is turned off on this EryxInterpreter (facade=False); "
    "use llm_query / llm_query_batched instead."
)


def _describe(step_timeout_s: float, memory_mb: int, facade: bool = True) -> str:
    timeout = f"{step_timeout_s / 60:g} minutes" if step_timeout_s >= 120 else f"{step_timeout_s:g} seconds"
    return (
        "Python 3.14 runs in a WebAssembly sandbox (CPython on wasmtime, via pyeryx) inside the host process. "
        "Variables persist across steps; the inputs are loaded once, not re-sent each step. Only the standard "
        "library is available: no network, no subprocesses, no files. Call llm_query, llm_query_batched and the "
        + ("tools as ordinary synchronous functions, from anywhere (functions, methods, lambdas). " if facade else
           "tools as ordinary synchronous functions, also inside your own functions and loops (not in lambdas). ")
        + "A last-line expression is printed as in a Python REPL (a str value is returned as it is). "
        f"A step may run for {timeout} and use {memory_mb:,} MiB; a step that exceeds either is stopped and the "
        "sandbox restarts: your variables are lost, the inputs stay. exit() is disabled."
    )


class EryxInterpreter:
    """A `dspy.CodeInterpreter` running code in the eryx sandbox of `dspy_rlm`.

    The class itself is a zero-argument factory: `dspy.RLM(..., interpreter_factory=EryxInterpreter)`.
    For other limits use `EryxInterpreter.factory(step_timeout=60, max_memory_mb=1024)`.

    Args:
        tools: host functions callable from the code by name (dspy.RLM adds its own to `.tools`).
        output_fields: `[{"name": ..., "type": ...}]` for `SUBMIT`; default one output, `output`.
        step_timeout: seconds one `execute()` may run, waiting on tools included.
        max_memory_mb: memory cap of the sandbox.
        max_output_chars: output kept per step (head and tail).
        callbacks: DSPy callbacks for the `on_interpreter_*` events of this instance.
        isolate_process: run the sandbox in a worker process (`dspy_rlm.sandbox.IsolatedSandbox`).
        facade: host DSPy's sandbox `dspy` facade (opens the sandbox's synchronous-call bridge,
            a loopback connection: see `dspy_rlm.sandbox.syncbridge`); False refuses it.
    """

    execution_instructions: str = _describe(DEFAULT_STEP_TIMEOUT_S, DEFAULT_MEMORY_MB)

    def __init__(
        self,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        output_fields: list[dict] | None = None,
        *,
        step_timeout: float = DEFAULT_STEP_TIMEOUT_S,
        max_memory_mb: int = DEFAULT_MEMORY_MB,
        max_output_chars: int = DEFAULT_OUTPUT_CHARS,
        callbacks: list | None = None,
        isolate_process: bool = False,
        facade: bool = True,
    ) -> None:
        self.tools: dict[str, Callable[..., Any]] = dict(tools or {})
        self.output_fields = output_fields
        self.callbacks = list(callbacks or [])
        self.limits = SandboxLimits(step_timeout_s=step_timeout, memory_bytes=max_memory_mb * 2**20)
        self.max_output_chars = max_output_chars
        self.isolate_process = isolate_process  # the guest in a worker process: see IsolatedSandbox
        self.facade = facade
        if step_timeout != DEFAULT_STEP_TIMEOUT_S or max_memory_mb != DEFAULT_MEMORY_MB or not facade:
            self.execution_instructions = _describe(step_timeout, max_memory_mb, facade)
        self._lock = threading.RLock()
        self._sandbox: Sandbox | IsolatedSandbox | None = None
        self._closed = False
        self._mounted: dict[str, Any] = {}  # name -> the value now loaded in the guest
        self._initial_tools: frozenset[str] = frozenset()  # host functions of the Sandbox
        self._bound_tools: set[str] = set()  # names with a guest function
        self._bound_outputs: list[str] = []
        self._rebind = False  # set through `_tools_registered = False`

    @classmethod
    def factory(cls, **options: Any) -> Callable[[], EryxInterpreter]:
        """A zero-argument factory making interpreters with these options (and the matching
        `execution_instructions`), for `dspy.RLM(..., interpreter_factory=...)`."""
        return _Factory(cls, options)

    # ------------------------------------------------------------------ lifecycle

    @with_callbacks
    def start(self) -> None:
        """Create the sandbox now (it is otherwise created by the first `execute`). Idempotent."""
        with self._lock:
            self._check_open()
            if self._sandbox is None:
                self._sandbox = self._build()

    @with_callbacks
    def shutdown(self) -> None:
        """Release the sandbox. Terminal: later `start`/`execute` raise CodeInterpreterError."""
        with self._lock:
            self._closed = True
            sandbox, self._sandbox = self._sandbox, None
            self._mounted.clear()
        if sandbox is not None:
            sandbox.close()

    def __enter__(self) -> EryxInterpreter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __call__(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        return self.execute(code, variables)

    def _check_open(self) -> None:
        if self._closed:
            raise CodeInterpreterError("This EryxInterpreter was shut down; create a new one for a fresh session.")

    # ------------------------------------------------------------------ execution

    @with_callbacks
    def execute(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        """Run `code` with `variables` defined; return its output (str or None), or
        `FinalOutput` if it called SUBMIT. Raises SyntaxError or CodeExecutionError for
        failures the code can fix, CodeInterpreterError for host-side ones."""
        if _EXECUTING.get() is self:
            raise CodeInterpreterError("EryxInterpreter cannot execute code from inside one of its own tools.")
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        with self._lock:
            self._check_open()
            if code == SHIM_SETUP and not self.facade:
                raise CodeExecutionError(_FACADE_OFF)
            variables, assignments = facade_variables(variables or {})
            changed = self._changed(variables)
            values = {name: loadable(name, value) for name, value in changed.items()}  # fails before a start
            if self._sandbox is None:
                self.start()  # as DSPy's lazy start: with its on_interpreter_startup_* callbacks
            self._bind()
            self._inject(values)
            self._mounted.update(changed)
            token = _EXECUTING.set(self)
            try:
                if code == SHIM_SETUP:  # as setup code: protected, and installed again after a restart
                    result = self._sandbox.extend_setup(install_code(assignments, _DISPATCH))
                else:
                    if assignments:
                        self._setup_step(assignments)
                    result = self._sandbox.run(with_echo(code))
            finally:
                _EXECUTING.reset(token)
            if result.restarted:  # guest functions defined by later bind steps are gone
                if not self.facade:
                    self._bound_tools = set(self._initial_tools)
                self._bound_outputs = []
        return _outcome(result)

    def _changed(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The variables whose value differs from what the guest holds: by identity, then
        by equality when the types match (a str compare is a memcmp)."""
        changed = {}
        for name, value in variables.items():
            if not is_identifier(name):
                raise CodeInterpreterError(f"Invalid variable name: {name!r}")
            if name in self._mounted:
                old = self._mounted[name]
                if old is value:
                    continue
                try:
                    if type(old) is type(value) and bool(old == value):
                        self._mounted[name] = value  # next time identity answers
                        continue
                except Exception:  # an odd __eq__: load it again
                    pass
            changed[name] = value
        return changed

    def _inject(self, values: dict[str, Any]) -> None:
        if not values:
            return
        try:
            self._sandbox.set_inputs(values)
        except (SandboxError, ValueError, TypeError) as exc:
            raise CodeInterpreterError(f"Could not load variables {sorted(values)} into the sandbox: {exc}") from exc

    def _build(self) -> Sandbox | IsolatedSandbox:
        # With the facade on, every tool is a synchronous guest function over the bridge (bound by _bind),
        # as on Pyodide; without it, tools are eryx callbacks the sandbox's await rewrite reaches.
        names = [] if self.facade else self._tool_names()
        ref = weakref.ref(self)  # eryx holds the callbacks: no strong cycle through it
        functions = {name: _host_tool(ref, name) for name in names}
        functions[_DISPATCH] = functools.partial(_dispatch, ref)
        outputs = self._output_names()
        try:
            sandbox = (IsolatedSandbox if self.isolate_process else Sandbox)(
                {},
                functions,
                limits=self.limits,
                setup_code=termination_code(outputs) + echo_setup(),
                max_output_chars=self.max_output_chars,
                sync_calls=self.facade,
            )
        except (SandboxError, ValueError, TypeError) as exc:
            raise CodeInterpreterError(f"Could not start the eryx sandbox: {exc}") from exc
        self._initial_tools = frozenset(names)
        self._bound_tools = set(names)
        self._bound_outputs = outputs
        return sandbox

    def _bind(self) -> None:
        """Define guest functions for tools added since the start, and follow changed outputs."""
        if self._rebind:
            self._rebind = False
            self._bound_outputs = []
            if not self.facade:  # synchronous tools are setup code: they stay
                self._bound_tools = set(self._initial_tools)
        code = []
        # The facade's tools are defined with its shim (see execute and interpreter_facade).
        new = [name for name in self._tool_names() if name not in self._bound_tools and not is_facade_tool(name)]
        for name in new:
            if not is_identifier(name) or name.startswith("__"):
                raise CodeInterpreterError(f"Invalid tool name: {name!r}")
            if not self.facade:
                code.append(f"async def {name}(*args, **kwargs):\n    return await {_DISPATCH}({name!r}, *args, **kwargs)")
        if new and self.facade:  # as setup code: protected, and defined again after a restart
            result = self._sandbox.extend_setup(sync_tools_code(new, _DISPATCH))
            if result.error:
                raise CodeInterpreterError(f"Could not register tools in the sandbox: {result.error}")
        outputs = self._output_names()
        if outputs != self._bound_outputs:
            code.append(f"_RLM_OUTPUTS[:] = {outputs!r}")
        if code:
            self._setup_step("\n".join(code))
        self._bound_tools.update(new)
        self._bound_outputs = outputs

    def _setup_step(self, code: str) -> None:
        result = self._sandbox.run(code)
        if result.error:
            raise CodeInterpreterError(f"Could not register tools or outputs in the sandbox: {result.error}")

    @property
    def _tools_registered(self) -> bool:
        """`dspy.PythonInterpreter`'s flag, which dspy.RLM (and DSPy's tests) set to False to
        have tools and outputs registered again: here the next `execute` binds them again."""
        return self._sandbox is not None and not self._rebind

    @_tools_registered.setter
    def _tools_registered(self, value: bool) -> None:
        self._rebind = not value

    def _tool_names(self) -> list[str]:
        # Of the reserved names (`__dspy_*`), only the facade's two tools are exposed, and only with it on.
        return [name for name in self.tools
                if not is_reserved_sandbox_name(name) or (self.facade and is_facade_tool(name))]

    def _output_names(self) -> list[str]:
        fields = self.output_fields or [{"name": "output"}]
        return [field["name"] for field in fields]

    # ------------------------------------------------------------------ tools

    @with_callbacks
    def invoke_tool(self, tool_name: str, kwargs: dict[str, Any]) -> Any:
        """Call a registered tool (on a sandbox worker thread) and return its raw result; async
        tools are run to completion. The code gets the result converted as DSPy converts it."""
        tool = self.tools.get(tool_name)
        if tool is None or tool_name not in self._tool_names():
            raise CodeInterpreterError(f"Unknown tool: {tool_name}")
        return run_awaitable(tool(*_POSITIONAL.get(), **kwargs))


class _Factory:
    """`EryxInterpreter.factory(...)`: zero-argument, and carries `execution_instructions`."""

    def __init__(self, cls: type[EryxInterpreter], options: dict[str, Any]) -> None:
        self._cls, self._options = cls, dict(options)
        self.execution_instructions = cls(**self._options).execution_instructions  # validates the options too

    def __call__(self) -> EryxInterpreter:
        return self._cls(**self._options)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{self._cls.__name__}.factory({options})"


def _host_tool(ref: weakref.ref, name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _dispatch(ref, name, *args, **kwargs)

    call.__name__ = name
    return call


def _dispatch(ref: weakref.ref, tool_name: str, /, *args: Any, **kwargs: Any) -> Any:
    interpreter = ref()
    if interpreter is None or interpreter._closed:
        raise RuntimeError("the interpreter was shut down")
    tool = interpreter.tools.get(tool_name)
    if tool is None:
        raise RuntimeError(f"{tool_name} is not available (the tool was removed)")
    args, kwargs = keywords(tool, args, kwargs)
    token = _POSITIONAL.set(args)
    try:
        return tool_result(interpreter.invoke_tool(tool_name, kwargs))
    finally:
        _POSITIONAL.reset(token)


def _outcome(result: StepResult) -> Any:
    """The output as printed (trailing newline kept, as DSPy's), then stderr, the error and notes."""
    if result.submitted:
        return FinalOutput(result.submission)
    stdout = step_output(result.stdout or "")
    text = stdout if stdout.strip() else ""
    for part in (result.stderr, result.error, *(f"[{note}]" for note in result.notes)):
        if part and part.strip():
            text += ("" if not text or text.endswith("\n") else "\n") + part
    if result.error_kind == "syntax":
        raise SyntaxError(text)
    if result.error:
        raise CodeExecutionError(text)
    return text or None
