"""`IsolatedSandbox`: a `Sandbox` in a child process, so nothing the guest does can end this one.

On pyeryx 0.11 a few kinds of guest code (C code walking data nested thousands
deep: `repr`, `json.loads`, `eval`) overflow the wasm runtime's native stack, and
the runtime aborts the whole process. Here that process is a worker
(`dspy_rlm.sandbox.worker`): when it dies, the step reports a crash, a new
worker starts with the same inputs, and the model is told which variables were
lost. Host functions still run in this process, in the caller's context (so
tracing spans nest as usual); the worker only sees their JSON arguments and
results. The price is a process start per sandbox and a JSON hop per call.
"""

from __future__ import annotations

import atexit
import collections
import contextvars
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from dspy_rlm import settings
from dspy_rlm.errors import InputsNotLoaded, SandboxClosed, SandboxError, SandboxUnavailable
from dspy_rlm.sandbox import inputs as mount
from dspy_rlm.sandbox.jsonsafe import dumps_any, encode_input, loads_any, to_json_safe
from dspy_rlm.sandbox.limits import SandboxLimits
from dspy_rlm.sandbox.protocol import StepResult
from dspy_rlm.sandbox.hostcalls import ABANDONED, call_host_function

__all__ = ["IsolatedSandbox", "WorkerDied"]

_START_TIMEOUT_S = 300.0  # a first start may build the factory cache (about 50 s)
_MARGIN_S = 30.0  # past the step's own limit, before a silent worker is given up on
# What the worker's sandbox may raise, raised again here with its type.
_ERROR_TYPES = {cls.__name__: cls for cls in (ValueError, TypeError, SandboxError, SandboxClosed, SandboxUnavailable,
                                               InputsNotLoaded)}


class WorkerDied(Exception):
    """The worker process ended (or stopped answering) before it replied."""


class IsolatedSandbox:
    """The `Sandbox` interface, with the guest in a child process. See the module docstring."""

    def __init__(
        self,
        inputs: Mapping[str, Any],
        functions: Mapping[str, Callable[..., Any]] = {},
        *,
        limits: SandboxLimits = SandboxLimits(),
        setup_code: str = "",
        max_output_chars: int = settings.MAX_OUTPUT_CHARS,
        sync_calls: bool = False,
    ) -> None:
        mount.check_names(inputs, functions)  # before the inputs are converted; the rest the worker checks
        self._inputs = {name: _portable(name, value) for name, value in inputs.items()}
        self._functions = dict(functions)
        self._init = {"functions": list(functions), "limits": limits.model_dump(), "setup_code": setup_code,
                      "max_output_chars": max_output_chars, "sync_calls": sync_calls}
        self._limits = limits
        self._lock = threading.Lock()
        self._variables: list[str] = []
        self._context = contextvars.copy_context()
        self._worker: _Worker | None = None
        self._stop_worker: Callable[[], Any] = lambda: None
        self._start()

    def _start(self) -> None:
        # The worker holds this object weakly, so a forgotten sandbox still stops its process.
        self._worker = worker = _take_worker(weakref.WeakMethod(self._call_host))
        self._stop_worker = weakref.finalize(self, worker.stop)
        try:
            done = worker.request({"op": "init", **self._init, **_wire(self._inputs)}, _START_TIMEOUT_S)
        except WorkerDied as exc:
            self.close()
            raise SandboxUnavailable(f"the sandbox worker process could not start: {exc}") from None
        if "error" in done:
            self.close()
            raise _failure(done)
        self._variables = done["variables"]

    @property
    def variables(self) -> list[str]:
        """Names of the model's variables after the last step."""
        return list(self._variables)

    def run(self, code: str, timeout_s: float | None = None, *, seal: bool = False) -> StepResult:
        """Run one step (see `Sandbox.run`); a worker that dies is replaced, and the step says so."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        with self._lock:
            if self._worker is None:
                raise SandboxClosed()
            self._context = contextvars.copy_context()
            step_s = self._limits.step_timeout_s if timeout_s is None else min(timeout_s, self._limits.step_timeout_s)
            started = time.perf_counter()
            try:
                done = self._worker.request({"op": "extend_setup" if seal else "run", "code": code,
                                             "timeout_s": timeout_s}, step_s + _MARGIN_S)
            except WorkerDied as exc:
                return self._replace_worker(str(exc), started)
            if "error" in done:
                raise _failure(done)
            self._variables = done["variables"]
            result = StepResult(**done["result"])
            if seal and not result.error:  # a new worker runs it too
                self._init["setup_code"] += "\n" + code
            return result

    def extend_setup(self, code: str) -> StepResult:
        """Run `code` now as setup code, kept for restarts and new workers (see `Sandbox.extend_setup`)."""
        return self.run(code, seal=True)

    def set_inputs(self, inputs: Mapping[str, Any]) -> None:
        """Add or replace inputs in the running guest (see `Sandbox.set_inputs`)."""
        if not inputs:
            return
        mount.check_names(inputs, {})
        portable = {name: _portable(name, value) for name, value in inputs.items()}
        with self._lock:
            if self._worker is None:
                raise SandboxClosed()
            try:
                done = self._worker.request({"op": "set_inputs", **_wire(portable)},
                                            self._limits.step_timeout_s + _MARGIN_S)
            except WorkerDied as exc:
                self._replace_worker(str(exc), time.perf_counter())
                raise InputsNotLoaded(f"the sandbox could not load the inputs {sorted(inputs)} ({exc}) and was "
                                 "restarted with the previous inputs; the model's variables were lost") from None
            if "error" in done:
                raise _failure(done)
            self._inputs.update(portable)
            self._variables = done["variables"]

    def _replace_worker(self, why: str, started: float) -> StepResult:
        lost = list(self._variables)
        self._stop_worker()
        try:
            self._start()
        except Exception as exc:
            self.close()
            raise SandboxUnavailable(f"the sandbox could not be restarted after its process ended and is now closed: "
                               f"{exc}") from exc
        lost_text = f"variables lost: {', '.join(lost)}" if lost else "no variables were lost"
        return StepResult(
            error=f"SandboxCrash: {why}",
            error_kind="crash", restarted=True, lost_variables=lost,
            notes=[f"sandbox restarted after a crash: {lost_text}"], seconds=time.perf_counter() - started,
        )

    def _call_host(self, name: str, args: list, kwargs: dict, timeout_s: float | None = None) -> dict[str, Any]:
        """Run host function `name` for the worker, in a copy of the running step's context,
        for at most `timeout_s` (the worker stops waiting then too)."""
        try:
            value = call_host_function(self._functions[name], self._context, args, kwargs, timeout_s=timeout_s)
            if value is ABANDONED:
                return {"error": f"{name} was still running at the step's time limit and was abandoned",
                        "error_type": "TimeoutError"}
            # Encoded here, as the in-process sandbox does, so what JSON cannot carry (an int
            # over 4,300 digits) fails the same way, as the guest's error, not a lost reply.
            return {"json": json.dumps(to_json_safe(value), ensure_ascii=False)}
        except Exception as exc:
            return {"error": str(exc), "error_type": type(exc).__name__}

    def close(self) -> None:
        """Close the sandbox; its worker process is kept for a later sandbox or stopped. Safe to call twice.

        A step still running (a call cancelled under `acall`) ends first: the worker's replies go to one waiter."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None and self._stop_worker.detach() is not None:
            _release_worker(worker)

    def __enter__(self) -> IsolatedSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _failure(done: dict[str, Any]) -> Exception:
    """The worker's error as the exception the in-process Sandbox would raise (its type kept)."""
    return _ERROR_TYPES.get(done["error_type"], SandboxError)(done["error"])


def _portable(name: str, value: Any) -> Any:
    """`value` as the worker receives it: str and TextFile as they are, anything else as the JSON it is mounted as."""
    return value if isinstance(value, (str, mount.TextFile)) else json.loads(encode_input(name, value)[1])


def _wire(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of a message: a TextFile goes as [path, chars], named in `text_files` (the worker mounts the file)."""
    files = [name for name, value in inputs.items() if isinstance(value, mount.TextFile)]
    return {"inputs": {name: [value.path, value.chars] if name in files else value for name, value in inputs.items()},
            "text_files": files}


class _Worker:
    """One child process and its pipe: requests wait for `done`; `call`s run on threads here."""

    def __init__(self) -> None:
        self.call_host: weakref.WeakMethod | None = None  # set when a sandbox takes this worker
        self._done: queue.Queue = queue.Queue()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._write_lock = threading.Lock()
        self.folder = tempfile.mkdtemp(prefix="dspy-rlm-worker-")  # its temporary files; whoever ends last removes it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dspy_rlm.sandbox.worker", self.folder], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_worker_environment(),
        )
        threading.Thread(target=self._read, name="rlm-isolated-reader", daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._drain_stderr, name="rlm-isolated-stderr", daemon=True)
        self._stderr_reader.start()

    def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self._send(message)
        try:
            done = self._done.get(timeout=timeout_s)
        except queue.Empty:
            raise WorkerDied(f"no answer within {timeout_s:g} s") from None
        if done is None:
            code = self.process.wait()
            self._stderr_reader.join(timeout=5)  # its last words say why it ended
            raise WorkerDied(_death(code, " ".join(self._stderr_tail).strip()))
        return done

    def _send(self, message: dict[str, Any]) -> None:
        data = dumps_any(message).encode() + b"\n"
        try:
            with self._write_lock:
                self.process.stdin.write(data)
                self.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the reader sees the pipe close and reports it

    def _read(self) -> None:
        try:
            for line in self.process.stdout:
                message = loads_any(line.decode())
                if message["op"] == "call":
                    threading.Thread(target=self._answer, args=(message,), name="rlm-isolated-call",
                                     daemon=True).start()
                else:
                    self._done.put(message)
        except ValueError:  # a line cut short: the worker died while writing it
            self.process.kill()
        finally:  # whatever ended the reading, the waiter hears of it (and then reads the exit code)
            self.process.stdout.close()
            self._done.put(None)

    def _answer(self, call: dict[str, Any]) -> None:
        call_host = self.call_host() if self.call_host is not None else None
        answer = ({"error": "the sandbox was closed", "error_type": "SandboxClosed"} if call_host is None
                  else call_host(call["name"], call["args"], call["kwargs"], call.get("timeout_s")))
        self._send({"op": "reply", "id": call["id"], **answer})

    def _drain_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr_tail.append(line.decode("utf-8", "replace").strip())
        self.process.stderr.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.process.stdin.close()
        except OSError:
            pass  # the worker had already gone


# pyeryx 0.11's runtime aborts the process when guest C code overflows its native stack.
_STACK_OVERFLOW = "overflowed its stack"


def _death(code: int, stderr: str) -> str:
    """How the worker ended, for the step's error: the signal or exit code, and the likely cause."""
    detail = f": {stderr[-300:]}" if stderr else ""
    if code >= 0:
        return f"the sandbox worker process exited with code {code}{detail}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if _STACK_OVERFLOW in stderr:
        return (f"the sandbox worker process was aborted ({name}{detail}): the guest ran out of native "
                "stack, most likely walking data nested thousands deep (repr, json, eval); keep data "
                "shallower, or walk it with a loop")
    if -code == getattr(signal, "SIGKILL", None):
        return (f"the sandbox worker process was killed ({name}{detail}), by another process or by the "
                "system running out of memory")
    return f"the sandbox worker process was killed by {name}{detail}"


IDLE_WORKERS = 2  # started workers kept waiting for the next sandbox (each holds about 100 MB)
_idle: list[_Worker] = []
_idle_lock = threading.Lock()


def _take_worker(call_host: weakref.WeakMethod) -> _Worker:
    """A started worker for a new sandbox: an idle one if any, and one more is started in the
    background whenever none is left, so a call rarely waits for a process to start (~0.6 s)."""
    worker = None
    with _idle_lock:
        while _idle and worker is None:
            candidate = _idle.pop()
            if candidate.process.poll() is None:
                worker = candidate
            else:
                candidate.stop()  # it died idle: its folder goes with it
        if not _idle:
            _idle.append(_Worker())
    worker = worker or _Worker()
    worker.call_host = call_host
    return worker


def _release_worker(worker: _Worker) -> None:
    """Close the worker's sandbox and keep the worker idle, or stop it if enough are idle."""
    worker.call_host = None
    try:
        done = worker.request({"op": "close"}, _MARGIN_S)
    except WorkerDied:
        done = {"error": "gone"}
    with _idle_lock:
        if "error" not in done and len(_idle) < IDLE_WORKERS:
            _idle.append(worker)
            return
    worker.stop()


@atexit.register
def stop_idle_workers() -> None:
    """Stop the workers kept waiting for the next sandbox (and remove their folders)."""
    with _idle_lock:
        workers, _idle[:] = list(_idle), []
    for worker in workers:
        worker.stop()


_ENVIRONMENT_KEPT = {"HOME", "PATH", "TMPDIR", "TEMP", "TMP", "LANG", "LC_ALL", "SYSTEMROOT", "VIRTUAL_ENV"}


def _worker_environment() -> dict[str, str]:
    """What the worker needs of this environment, and nothing else (no API keys or tokens)."""
    kept = {key: value for key, value in os.environ.items()
            if key in _ENVIRONMENT_KEPT or key.startswith(("PYTHON", "DSPY_RLM_", "LD_", "XDG_"))}
    # The folder holding `dspy_rlm` comes first, so the worker runs this very code.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    kept["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    return kept
