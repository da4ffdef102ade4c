"""Calling host functions for guest code: in the caller's context, async ones run to completion.

Both sandboxes (in process and isolated) call host functions through here, and so do
the module layer's tool wrappers, so an async tool behaves the same wherever it runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["call_host_function", "run_awaitable"]


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def run_awaitable(value: Any, loop: asyncio.AbstractEventLoop | None = None) -> Any:
    """`value`, or its result if it is awaitable: run on `loop` (another thread's running
    event loop, as under `acall`) when one is given, else to completion on this thread."""
    if not inspect.isawaitable(value):
        return value
    if loop is not None:
        return asyncio.run_coroutine_threadsafe(_awaited(value), loop).result()
    return asyncio.run(_awaited(value))


def call_host_function(fn: Callable[..., Any], context: contextvars.Context, args: list, kwargs: dict) -> Any:
    """Call `fn` in a copy of `context` (calls may overlap, and a Context can't be entered by
    two threads at once); an async host function is run to completion on this thread."""
    context = context.copy()
    return context.run(lambda: run_awaitable(fn(*args, **kwargs)))
