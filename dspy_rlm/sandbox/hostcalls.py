"""Calling host functions for guest code: in the caller's context, within a time bound.

Both sandboxes (in process and isolated) call host functions through here, and so do
the module layer's tool wrappers, so an async tool behaves the same wherever it runs.

A host call that may not outlive its step runs on a daemon thread (reused, never shared) and is waited
for only until the bound (`call_host_function(..., timeout_s=...)`): Python cannot stop a
thread, so a call past its bound is abandoned, never joined. Waits nested inside it (an
async tool on the caller's loop, a sub-query's future) read the bound with `remaining()`
and give up, cancelling what they wait for, soon after the call itself was abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Final

__all__ = ["ABANDONED", "bounded", "call_host_function", "named_error", "remaining", "run_awaitable", "submit_daemon"]

# Nested waits give up this long after the host call's own bound, so the call is always
# abandoned first (and reported as such), and whatever they waited for is still cleaned up.
_CLEANUP_MARGIN_S = 1.0
_ends: contextvars.ContextVar[float | None] = contextvars.ContextVar("dspy_rlm_host_call_ends", default=None)


class _Abandoned:
    def __repr__(self) -> str:
        return "ABANDONED"


ABANDONED: Final = _Abandoned()
"""What `call_host_function` returns for a call still running at its bound (not an exception,
which the host function itself could raise too)."""


@functools.lru_cache(maxsize=64)
def named_error(type_name: str) -> type[Exception]:
    """An exception class named like another (`Type: message` is what the guest is shown): for an
    error that crossed a process boundary, or one whose arguments must not be kept (a secret)."""
    return type(type_name, (Exception,), {})


def remaining(margin_s: float = _CLEANUP_MARGIN_S) -> float | None:
    """Seconds left to the bound of the host call running in this context, plus `margin_s`
    (None outside a bounded call): how long a wait nested in a host call may last."""
    ends = _ends.get()
    return None if ends is None else max(ends - time.monotonic() + margin_s, 0.0)


def bounded(seconds: float | None) -> float | None:
    """`seconds` (None: no bound), shortened to what `remaining()` allows."""
    left = remaining()
    if left is None or seconds is None:
        return left if seconds is None else seconds
    return min(seconds, left)


class _DaemonThreads:
    """Daemon threads reused for host calls: a new one starts whenever none is idle, so a call
    never waits behind others however many are stuck, and an idle one ends after `idle_s`
    (starting a thread per call would add about half a millisecond to every host call)."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0  # threads waiting for a job that no submitted job has claimed yet
        self._lock = threading.Lock()

    def run(self, job: Callable[[], None], name: str) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # claimed: that thread takes this job
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        # It starts claimed, by the job it was started for; after each job it is idle again.
        while (job := self._next()) is not None:
            job()
            with self._lock:
                self._idle += 1

    def _next(self) -> Callable[[], None] | None:
        """The next job, or None once this thread has been idle for `idle_s` and may end."""
        while True:
            try:
                return self._jobs.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # an unclaimed waiting thread: this one may go
                        self._idle -= 1
                        return None
                # Every waiting thread is claimed: a job is on its way, so keep waiting.


_threads = _DaemonThreads(idle_s=5.0)


def submit_daemon(fn: Callable[..., Any], *args: Any, name: str = "rlm-host-call",
                  gate: threading.Semaphore | None = None, **kwargs: Any) -> Future:
    """Run `fn` in a copy of this context on a daemon thread that is free; return its future.

    For calls a bound may abandon: a ThreadPoolExecutor's workers are joined at interpreter
    exit (one abandoned call would keep the process alive) and are few (a step waiting on one
    could starve what it waits for). `gate` caps how many such calls work at once; `name`
    names the thread if one has to be started.
    """
    future: Future = Future()
    context = contextvars.copy_context()

    def work() -> None:
        # The gate is taken before the future runs, so a call still queued behind it can be
        # cancelled (a batch abandoned at its deadline makes no more model calls).
        with gate if gate is not None else contextlib.nullcontext():
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = context.run(fn, *args, **kwargs)
            except BaseException as exc:  # handed to the waiter, like an executor would
                future.set_exception(exc)
            else:
                future.set_result(result)

    _threads.run(work, name)
    return future


async def _awaited(awaitable: Any, timeout_s: float | None) -> Any:
    return await asyncio.wait_for(awaitable, timeout_s)


def run_awaitable(value: Any, loop: asyncio.AbstractEventLoop | None = None) -> Any:
    """`value`, or its result if it is awaitable: run on `loop` (another thread's running
    event loop, as under `acall`) when one is given, else to completion on this thread.

    Inside a bounded host call, the awaitable is cancelled (TimeoutError) once the call's
    bound has passed, instead of being waited for without end."""
    if not inspect.isawaitable(value):
        return value
    left = remaining()
    if loop is None:
        return asyncio.run(_awaited(value, left))
    future = asyncio.run_coroutine_threadsafe(_awaited(value, None), loop)
    try:
        return future.result(timeout=left)
    except FutureTimeout:
        future.cancel()  # cancels the task on the loop
        raise TimeoutError("the host call ran out of time and was abandoned") from None


def call_host_function(fn: Callable[..., Any], context: contextvars.Context, args: list, kwargs: dict,
                       *, timeout_s: float | None = None) -> Any:
    """Call `fn(*args, **kwargs)` in a copy of `context` (calls may overlap, and a Context can't be
    entered by two threads at once); an async host function is run to completion.

    With `timeout_s`, the call runs on a daemon thread and is waited for that long at most:
    its result, or `ABANDONED` if it was still running (it runs on, unobserved)."""
    context = context.copy()
    if timeout_s is None:
        return context.run(_call, fn, args, kwargs)
    context.run(_ends.set, time.monotonic() + timeout_s)
    future = submit_daemon(context.run, _call, fn, args, kwargs, name="rlm-host-call")
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        return ABANDONED


def _call(fn: Callable[..., Any], args: list, kwargs: dict) -> Any:
    return run_awaitable(fn(*args, **kwargs))
