"""`Sandbox`: one pyeryx session that runs model-written Python steps."""

from __future__ import annotations

import contextvars
import json
import logging
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import eryx

from dspy_rlm import settings
from dspy_rlm.errors import InputsNotLoaded, RewriteError, SandboxClosed, SandboxUnavailable
from dspy_rlm.sandbox import guest, nesting
from dspy_rlm.sandbox import inputs as mount
from dspy_rlm.sandbox.factory import load_factory
from dspy_rlm.sandbox.failures import abandoned_notes, classify_failure, failure_message
from dspy_rlm.sandbox.hostcalls import ABANDONED, call_host_function
from dspy_rlm.sandbox.jsonsafe import to_json_safe
from dspy_rlm.sandbox.limits import SandboxLimits
from dspy_rlm.sandbox.output import OutputBuffer, truncate_middle
from dspy_rlm.sandbox.protocol import ErrorKind, StepResult
from dspy_rlm.sandbox.rewrite import make_awaitable
from dspy_rlm.sandbox.syncbridge import SyncBridge, reply_with

__all__ = ["Sandbox"]

log = logging.getLogger(__name__)

_NO_FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType({})
_MAX_HOST_ERROR_CHARS = 2_000
_CALLBACK_BACKSTOP_S = 5.0  # eryx's own callback timeout, past the cap `_host_callback` enforces
# Why the sandbox had to be restarted, as the restart note words it.
_RESTART_CAUSE = {"timeout": "a timeout", "memory": "running out of memory", "fuel": "running out of fuel"}


class _Step:
    """State of the running step that host function calls read (on worker threads)."""

    def __init__(self, deadline: float, context: contextvars.Context) -> None:
        self.deadline = deadline
        self.context = context
        self.calls = 0
        self.timed_out = False
        self.abandoned: list[str] = []  # host functions still running when the step's time ran out
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.calls += 1

    def abandon(self, name: str) -> None:
        with self._lock:
            self.timed_out = True
            self.abandoned.append(name)


class _Shared:
    """Mutable holder shared with the eryx callbacks; holds no reference to the
    Sandbox, so a dropped Sandbox is freed (and its folder removed) promptly."""

    def __init__(self, max_output_chars: int) -> None:
        self.step = _Step(float("inf"), contextvars.copy_context())
        self.stdout = OutputBuffer(max_output_chars)
        self.stderr = OutputBuffer(max_output_chars)


def _host_callback(name: str, fn: Callable[..., Any], shared: _Shared, cap_s: float) -> Callable[[str], Any]:
    def callback(payload: str) -> Any:
        step = shared.step
        step.count()
        # eryx does not enforce the step timeout while a callback is pending, so no new call
        # may start once the step's time is up, and a call may last only what is left of it.
        left = step.deadline - time.monotonic()
        if left <= 0:
            step.timed_out = True
            raise eryx.SuspendCallback(f"step time limit reached before calling {name}")
        try:
            args, kwargs = json.loads(payload)
            value = call_host_function(fn, step.context, args, kwargs, timeout_s=min(left, cap_s))
            if value is not ABANDONED:
                # JSON text, not a value: eryx's conversion would sort dict keys.
                return _reply_text(to_json_safe(value))
        except Exception as exc:  # never let a host traceback (paths, source) reach the guest
            message = truncate_middle(f"{type(exc).__name__}: {exc}", _MAX_HOST_ERROR_CHARS)
            return {"__rlm_error__": message}
        if cap_s < left:  # the call's own cap: the guest is told, and the step goes on
            return {"__rlm_error__": f"the call took longer than {cap_s:g} s and was abandoned"}
        step.abandon(name)  # the step's time is up: stop the guest (it cannot catch this)
        raise eryx.SuspendCallback(f"step time limit reached while {name} was running")

    callback.__name__ = guest.CALLBACK_PREFIX + name
    return callback


def _reply_text(value: Any) -> str:
    """A host function's result as JSON text eryx can pass: a lone surrogate (which UTF-8 cannot
    encode) travels as a `\\udXXX` escape, and the guest's `json.loads` restores it."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


class Sandbox:
    """A persistent Python session in a pyeryx WebAssembly sandbox.

    `inputs` become variables (str as str; JSON-like values and pydantic models as
    dicts/lists), loaded once from a read-only folder mounted at /inputs.
    `functions` are host callables the guest calls as `name(*args, **kwargs)`
    (async in the guest; plain calls are rewritten to `await`). `setup_code` runs
    after the built-in prelude whenever the guest (re)starts; what it defines is
    protected like the functions. With `sync_calls`, guest code may also call them
    as `_rlm_host.call_sync(name, ...)` from any frame (see syncbridge.py).
    Concurrent `run()` calls on one instance are serialised."""

    def __init__(
        self,
        inputs: Mapping[str, Any],
        functions: Mapping[str, Callable[..., Any]] = _NO_FUNCTIONS,
        *,
        limits: SandboxLimits = SandboxLimits(),
        setup_code: str = "",
        max_output_chars: int = settings.MAX_OUTPUT_CHARS,
        sync_calls: bool = False,
    ) -> None:
        mount.check_names(inputs, functions)
        if max_output_chars <= 0:
            raise ValueError(f"max_output_chars must be > 0, got {max_output_chars}")
        self._limits = limits
        self._step_timeout_s = limits.step_timeout_s
        self._max_chars = max_output_chars
        self._function_names = list(functions)
        self._setup_code = setup_code
        self._lock = threading.Lock()
        self._shared = _Shared(max_output_chars)
        self._variables: list[str] = []
        self._async_names: set[str] = set(functions)
        self._steps = 0
        self._input_writes = 0
        self._session: eryx.Session | None = None
        self._sync_calls, self._bridge = sync_calls, None
        self._folder = folder = tempfile.mkdtemp(prefix="dspy-rlm-inputs-")
        # Removes the folder on close(), on garbage collection or at exit.
        self._cleanup = weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        try:
            self._inputs = mount.write_inputs(Path(folder), inputs)
            self._session = self._create_session(folder, functions)
            self._boot()
        except BaseException:
            self._session = None
            self._cleanup()
            if self._bridge is not None:
                self._bridge.close()
            raise

    def _create_session(self, folder: str, functions: Mapping[str, Callable[..., Any]]) -> eryx.Session:
        lim = self._limits
        callbacks = [
            {"name": guest.CALLBACK_PREFIX + name, "description": name,
             "fn": _host_callback(name, fn, self._shared, lim.callback_timeout_s)}
            for name, fn in functions.items()
        ]
        shared = self._shared
        if self._sync_calls:
            over = lambda: shared.step.calls >= lim.max_callbacks_per_step  # noqa: E731
            self._bridge = SyncBridge(reply_with({c["description"]: c["fn"] for c in callbacks}, over))
            weakref.finalize(self, self._bridge.close)
        return load_factory().create_session(
            network=self._bridge.network(lim.step_timeout_s) if self._bridge else None,
            resource_limits=eryx.ResourceLimits(
                execution_timeout_ms=max(1, round(lim.step_timeout_s * 1000)),
                # A backstop: `_host_callback` bounds each call itself, by the step's time too.
                callback_timeout_ms=max(1, round((lim.callback_timeout_s + _CALLBACK_BACKSTOP_S) * 1000)),
                max_memory_bytes=lim.memory_bytes,
                max_callback_invocations=lim.max_callbacks_per_step,
            ),
            callbacks=callbacks,
            volumes=[(folder, guest.INPUTS_MOUNT, True)],
            # Through `shared`, not bound methods: eryx would keep the Sandbox alive.
            on_stdout=lambda chunk: shared.stdout(chunk),
            on_stderr=lambda chunk: shared.stderr(chunk),
            result_variable=guest.RESULT_VARIABLE,
        )

    def _boot(self) -> None:
        """Prelude, inputs and setup_code, on a new or freshly reset guest."""
        assert self._session is not None
        self._shared.step = _Step(time.monotonic() + self._limits.step_timeout_s, contextvars.copy_context())
        booted = self._session.execute(
            guest.boot_code(
                self._inputs,
                self._function_names,
                max_calls=self._limits.max_callbacks_per_step,
                callback_timeout_s=self._limits.callback_timeout_s,
                bridge=self._bridge.address() if self._bridge else None,
            )
        )
        guest.boot_done(booted.result)
        report = self._session.execute(guest.step_code(self._setup_code, None, "<setup>", seal=True)).result
        if report.get("error"):
            raise SandboxUnavailable(f"setup_code failed:\n{report['error']}")
        self._variables = []
        self._async_names = set(self._function_names) | set(report["async"])

    def set_inputs(self, inputs: Mapping[str, Any]) -> None:
        """Add inputs, or replace the values of existing ones, in the running guest.

        Each value is written to the read-only mount and loaded like the inputs given
        to the constructor (a variable of that name is overwritten), and is re-mounted
        after any restart. It costs a file write and a guest load per value, so pass
        only values that changed. If the guest cannot load them (memory cap), it is
        restarted with the previous inputs and InputsNotLoaded is raised."""
        if not inputs:
            return
        mount.check_names(inputs, {})
        clashing = sorted(set(inputs) & set(self._function_names))
        if clashing:
            raise InputsNotLoaded(f"{', '.join(clashing)} given both as an input and as a function; rename one of them")
        with self._lock:
            if self._session is None:
                raise SandboxClosed()
            self._input_writes += 1
            # New file names: the files of the current inputs stay valid for a restart.
            added = mount.write_inputs(Path(self._folder), inputs, prefix=f"v{self._input_writes}.")
            step = _Step(time.monotonic() + self._limits.step_timeout_s, contextvars.copy_context())
            self._shared.step = step
            try:
                report = self._session.execute(guest.set_inputs_code(added)).result
                failure = None if isinstance(report, dict) and "variables" in report else \
                    ("crash", "the guest did not report back")
            except Exception as exc:  # e.g. over the memory cap: the guest may hold part of them
                failure = classify_failure(exc, step.timed_out)
            if failure is not None:
                mount.remove_files(self._folder, added)
                self._recover(failure, step, time.perf_counter())
                lines = [line for line in failure[1].splitlines() if line.strip()]
                raise InputsNotLoaded(
                    f"the sandbox could not load the inputs {sorted(inputs)} ({lines[-1] if lines else failure[0]}) "
                    "and was restarted with the previous inputs; the model's variables were lost"
                )
            mount.remove_files(self._folder, [spec for spec in self._inputs if spec[0] in inputs])
            self._inputs = [spec for spec in self._inputs if spec[0] not in inputs] + added
            self._variables = list(report["variables"])

    @property
    def variables(self) -> list[str]:
        """Names of the model's variables after the last step (not inputs, not the
        injected functions or setup names, not _private)."""
        return list(self._variables)

    def run(self, code: str, timeout_s: float | None = None) -> StepResult:
        """Run one step of model code and report what happened.

        `timeout_s` shortens this step's time limit (for example to what is left
        of a caller's deadline); it never extends `limits.step_timeout_s`.
        """
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        with self._lock:
            if self._session is None:
                raise SandboxClosed()
            self._set_step_timeout(self._limits.step_timeout_s if timeout_s is None
                                   else max(min(timeout_s, self._limits.step_timeout_s), 0.001))
            return self._run(code, time.perf_counter())

    def extend_setup(self, code: str) -> StepResult:
        """Run `code` now as setup code: what it defines is protected, is not listed in
        `variables`, and is defined again whenever the guest restarts (if the step succeeds)."""
        with self._lock:
            if self._session is None:
                raise SandboxClosed()
            result = self._run(code, time.perf_counter(), seal=True)
            if not result.error:
                self._setup_code += "\n" + code
            return result

    def _set_step_timeout(self, seconds: float) -> None:
        if seconds != self._step_timeout_s:
            self._session.execution_timeout_ms = max(1, round(seconds * 1000))
            self._step_timeout_s = seconds

    def _run(self, code: str, start: float, seal: bool = False) -> StepResult:
        if "\0" in code:
            return StepResult(
                error="SyntaxError: the code contains NUL (\\x00) characters; remove them and run it again",
                error_kind="syntax",
                seconds=time.perf_counter() - start,
            )
        too_deep = nesting.too_deep(code)
        if too_deep:
            return StepResult(error=too_deep, error_kind="syntax", seconds=time.perf_counter() - start)
        try:
            runnable = make_awaitable(code, self._async_names)
        except RewriteError as exc:
            return StepResult(error=str(exc), error_kind="rewrite", seconds=time.perf_counter() - start)
        self._steps += 1
        snippet = guest.step_code(
            runnable, None if runnable == code else code, guest.step_filename(self._steps), seal=seal
        )
        step = _Step(time.monotonic() + self._step_timeout_s, contextvars.copy_context())
        shared = self._shared
        shared.step = step
        shared.stdout.clear()
        shared.stderr.clear()
        try:
            report = self._session.execute(snippet).result
            failure = None if guest.well_formed(report) else ("crash", "no report, or a malformed one")
            if failure is None and step.timed_out:  # a sync call refused at the deadline; the guest caught it
                failure = ("timeout", "")
        except Exception as exc:
            failure = classify_failure(exc, step.timed_out)
        # The step is over: a host call the guest sent without waiting (over the sync bridge) is refused.
        step.deadline = float("-inf")
        if failure is not None:
            return self._recover(failure, step, start)
        return self._result(report, step, start)

    def _result(self, report: dict, step: _Step, start: float) -> StepResult:
        notes = [f"`{name}` was overwritten by your code and has been restored" for name in report["restored"]]
        kind = report.get("kind")
        if kind == "memory":
            notes.append(
                f"the sandbox has a memory limit of {self._limits.memory_bytes / 2**20:,.0f} MiB; "
                "`del` large variables you no longer need"
            )
        self._variables = list(report["variables"])
        self._async_names = set(self._function_names) | set(report["async"])
        error = report.get("error")
        return StepResult(
            stdout=self._shared.stdout.text(),
            stderr=self._shared.stderr.text(),
            error=truncate_middle(error.rstrip("\n"), self._max_chars) if error else None,
            error_kind=kind,
            submitted="submission" in report,
            submission=json.loads(report["submission"]) if "submission" in report else None,
            notes=notes,
            seconds=time.perf_counter() - start,
            callbacks=step.calls,
        )

    def _recover(self, failure: tuple[ErrorKind, str], step: _Step, start: float) -> StepResult:
        """Reset the guest after a step it could not finish, and say what was lost."""
        kind, detail = failure
        if kind == "crash":
            log.warning("sandbox step crashed; restarting the guest: %s", detail.splitlines()[0] if detail else "")
        lost = list(self._variables)
        stdout, stderr = self._shared.stdout.text(), self._shared.stderr.text()
        # Always reset, even when eryx says the guest is usable: after a timeout the
        # stopped coroutine would otherwise keep running in later steps.
        try:
            self._session.reset()
            self._boot()
        except Exception as exc:
            self._session = None
            self._cleanup()
            raise SandboxUnavailable(
                f"the sandbox could not be restarted after a {kind} and is now closed: {exc}"
            ) from exc
        cause = _RESTART_CAUSE.get(kind, "a crash")
        lost_text = f"variables lost: {', '.join(lost)}" if lost else "no variables were lost"
        return StepResult(
            stdout=stdout,
            stderr=stderr,
            error=failure_message(kind, detail, self._limits, self._step_timeout_s),
            error_kind=kind,
            restarted=True,
            lost_variables=lost,
            notes=[*abandoned_notes(step.abandoned, self._step_timeout_s), f"sandbox restarted after {cause}: {lost_text}"],
            seconds=time.perf_counter() - start,
            callbacks=step.calls,
        )

    def close(self) -> None:
        """Drop the session and delete the inputs folder. Safe to call twice."""
        with self._lock:
            self._session = None
            self._cleanup()
            if self._bridge is not None:
                self._bridge.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
