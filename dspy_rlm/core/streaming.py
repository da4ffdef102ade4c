"""`dspy.streamify` support: where a streamed call's host callbacks run, and the submitted answer.

`dspy.streamify(rlm)` runs `forward` on an anyio worker thread with `settings.send_stream` set.
DSPy sends stream chunks and status messages from that thread with `anyio.from_thread.run`,
which works only on anyio's worker threads; `llm_query` and tools, though, are called on the
sandbox's threads. So a streamed call (`forward` or `aforward`) runs its async work on the
stream's event loop and each host function on one of anyio's worker threads of that loop: the
sub-queries stream like any predictor, and tools report their status.

When code SUBMITs, no model writes the outputs, so a listener on an output field (it attaches to
`extract`, the one predictor with those fields) would hear nothing: the submitted values are sent
to it as one last chunk each.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import dspy
from dspy.streaming.messages import StreamResponse, sync_send_to_stream
from pydantic_core import to_json

from dspy_rlm.sandbox import remaining

logger = logging.getLogger("dspy_rlm")

__all__ = ["answer_chunks", "astream_submitted", "on_stream_thread", "reach_stream", "stream_loop", "stream_submitted"]


def stream_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the stream this synchronous call sends to, if it is streamed from an anyio worker thread."""
    if dspy.settings.send_stream is None:
        return None
    import anyio.from_thread

    try:
        return anyio.from_thread.run_sync(asyncio.get_running_loop)
    except RuntimeError:  # not on an anyio worker thread: callbacks keep their own threads
        return None


def reach_stream(functions: dict[str, Callable[..., Any]],
                 loop: asyncio.AbstractEventLoop | None) -> dict[str, Callable[..., Any]]:
    """The host functions, each run on an anyio worker thread of `loop` when this call is streamed."""
    if loop is None or dspy.settings.send_stream is None:
        return functions
    return {name: _on_worker_thread(function, loop) for name, function in functions.items()}


def _on_worker_thread(function: Callable[..., Any], loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        return on_stream_thread(loop, function, *args, timeout_s=remaining(), **kwargs)

    return call


def on_stream_thread(loop: asyncio.AbstractEventLoop, function: Callable[..., Any], *args: Any,
                     timeout_s: float | None = None, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` on an anyio worker thread of the stream's `loop` (where DSPy can
    send chunks from), in this call's context; waited for `timeout_s` at most (then `TimeoutError`,
    and the wait on the loop is cancelled, so an abandoned call does not hold anyio's thread slot)."""
    import anyio.to_thread

    bound = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    future = asyncio.run_coroutine_threadsafe(anyio.to_thread.run_sync(bound, abandon_on_cancel=True), loop)
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        future.cancel()
        raise TimeoutError(f"{getattr(function, '__name__', 'the call')} ran out of time and was abandoned") from None


def answer_chunks(extract: Any, outputs: dict[str, Any]) -> list[StreamResponse]:
    """One last chunk per output field that a listener of this call waits for (on `extract`)."""
    if dspy.settings.send_stream is None:
        return []
    chunks = []
    for listener in dspy.settings.stream_listeners or []:
        name = listener.signature_field_name
        if listener.predict is not extract or name not in outputs or (listener.stream_end and not listener.allow_reuse):
            continue
        listener.stream_start = listener.stream_end = True  # as after a streamed field: finalize() adds nothing
        chunks.append(StreamResponse(listener.predict_name, name, _text(outputs[name]), is_last_chunk=True))
    return chunks


def stream_submitted(extract: Any, outputs: dict[str, Any]) -> None:
    """Send the submitted outputs to their listeners (from `forward`'s thread)."""
    for chunk in answer_chunks(extract, outputs):
        try:
            sync_send_to_stream(dspy.settings.send_stream, chunk)
        except RuntimeError as error:  # a stream set by hand, off anyio's threads: the prediction still returns
            logger.warning("Could not stream the submitted %r: %s", chunk.signature_field_name, error)


async def astream_submitted(extract: Any, outputs: dict[str, Any]) -> None:
    """Send the submitted outputs to their listeners (from `aforward`)."""
    for chunk in answer_chunks(extract, outputs):
        await dspy.settings.send_stream.send(chunk)


def _text(value: Any) -> str:
    """A value as ChatAdapter writes a field: a str as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return to_json(value).decode()
    except Exception:  # not JSON-able: its text is still the best the listener can get
        return str(value)
