"""The child process of an `IsolatedSandbox`: sandboxes, one at a time, driven over a pipe.

    python -m dspy_rlm.sandbox.worker

Messages are JSON lines. The parent sends `init`, then `run` / `set_inputs`
commands and finally `close`; the worker answers each with one `done` message, then
waits for the next `init` (the parent keeps a few idle workers). Whenever guest code
calls a host function, the worker sends a `call` message and waits for the parent's
`reply`: the function itself runs in the parent, so API keys never reach this
process. If the runtime aborts this process, the parent sees the pipe close and
starts another. When the parent goes (its end of the pipe closes, or this process is
handed to another parent), the worker exits at once, even in the middle of a step.

    python -m dspy_rlm.sandbox.worker FOLDER

FOLDER, made by the parent, holds the worker's temporary files; whichever of the two
ends last removes it.
"""

from __future__ import annotations

import functools
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import fields
from typing import Any, BinaryIO, Callable

from dspy_rlm.sandbox.factory import load_factory
from dspy_rlm.sandbox.hostcalls import bounded, named_error
from dspy_rlm.sandbox.inputs import TextFile
from dspy_rlm.sandbox.jsonsafe import dumps_any, loads_any
from dspy_rlm.sandbox.limits import SandboxLimits
from dspy_rlm.sandbox.session import Sandbox


class Channel:
    """Both directions of the pipe: commands in a queue, calls waiting for replies."""

    def __init__(self, inbox: BinaryIO, outbox: BinaryIO, on_closed: Callable[[], Any]) -> None:
        self._outbox = outbox
        self._on_closed = on_closed
        self._write_lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self._next_id = 0
        self.call_timeout_s = 600.0  # set per sandbox, from its limits
        self.commands: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(inbox,), name="rlm-worker-reader", daemon=True).start()

    def send(self, message: dict[str, Any]) -> None:
        # Any depth: what the in-process sandbox hands back, this must carry (json stops at ~10,000 levels).
        data = dumps_any(message).encode() + b"\n"
        with self._write_lock:
            self._outbox.write(data)
            self._outbox.flush()

    def _read(self, inbox: BinaryIO) -> None:
        for line in inbox:
            message = loads_any(line.decode())
            if message["op"] == "reply":
                waiting = self._replies.pop(message["id"], None)
                if waiting is not None:
                    waiting.put(message)
            else:
                self.commands.put(message)
        self._on_closed()  # the parent is gone

    def host_function(self, name: str) -> Callable[..., Any]:
        """A stand-in for host function `name`: asks the parent to call it, waits for the answer."""
        def call(*args: Any, **kwargs: Any) -> Any:
            answer: queue.Queue = queue.Queue(maxsize=1)
            with self._write_lock:
                self._next_id += 1
                call_id = self._next_id
                self._replies[call_id] = answer
            timeout_s = bounded(self.call_timeout_s)  # not past the step's time
            # The parent bounds the call too, so an abandoned one is cancelled there, not run to its end.
            self.send({"op": "call", "id": call_id, "name": name, "args": args, "kwargs": kwargs,
                       "timeout_s": timeout_s})
            try:
                reply = answer.get(timeout=timeout_s)
            except queue.Empty:
                self._replies.pop(call_id, None)
                raise TimeoutError(f"{name} did not answer within {timeout_s:.1f} s") from None
            if "error" in reply:
                raise named_error(reply["error_type"])(reply["error"])
            return loads_any(reply["json"])

        call.__name__ = name
        return call


def serve(channel: Channel, init: dict[str, Any]) -> None:
    """One sandbox, from `init` until `close`."""
    channel.call_timeout_s = init["limits"]["callback_timeout_s"] + 5
    functions = {name: channel.host_function(name) for name in init["functions"]}
    try:
        sandbox = Sandbox(_inputs(init), functions, limits=SandboxLimits(**init["limits"]),
                          setup_code=init["setup_code"], max_output_chars=init["max_output_chars"],
                          sync_calls=init.get("sync_calls", False))
    except Exception as exc:
        channel.send(_failure(exc))
        return
    channel.send({"op": "done", "variables": sandbox.variables})
    while True:
        command = channel.commands.get()
        if command["op"] == "close":
            sandbox.close()
            channel.send({"op": "done"})
            return
        try:
            if command["op"] in ("run", "extend_setup"):
                result = _shallow(sandbox.run(command["code"], timeout_s=command["timeout_s"])
                                  if command["op"] == "run" else sandbox.extend_setup(command["code"]))
                channel.send({"op": "done", "result": result, "variables": sandbox.variables})
            elif command["op"] == "set_inputs":
                sandbox.set_inputs(_inputs(command))
                channel.send({"op": "done", "variables": sandbox.variables})
        except Exception as exc:
            channel.send(_failure(exc))


def _inputs(message: dict[str, Any]) -> dict[str, Any]:
    """A message's inputs, with the files named in `text_files` as TextFile values again."""
    inputs = message["inputs"]
    for name in message.get("text_files", ()):
        inputs[name] = TextFile(*inputs[name])
    return inputs


def _shallow(result: Any) -> dict[str, Any]:
    # Not dataclasses.asdict: it copies the submission recursively, which fails 1,000 levels down.
    return {field.name: getattr(result, field.name) for field in fields(result)}


def _failure(exc: Exception) -> dict[str, Any]:
    # The parent raises it again, with the same type when it is a builtin one.
    return {"op": "done", "error": str(exc), "error_type": type(exc).__name__}


def watch_parent(parent_pid: int, on_gone: Callable[[], Any], *, interval_s: float = 1.0,
                 getppid: Callable[[], int] = os.getppid) -> None:
    """Call `on_gone` once this process's parent is no longer `parent_pid` (it died, and
    the process was adopted), then return. Runs on a thread of its own."""
    while getppid() == parent_pid:
        time.sleep(interval_s)
    on_gone()


def _exit_now(folder: str | None) -> None:
    """The parent is gone: nobody will read a result, so stop the step where it is.
    os._exit skips the sandbox's own clean-up, hence the folder its files are in."""
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    os._exit(0)


def main() -> None:
    # The protocol owns the real stdout; anything else printed here goes to stderr.
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    folder = sys.argv[1] if len(sys.argv) > 1 else None
    if folder:
        tempfile.tempdir = folder  # every sandbox's inputs folder goes in it
    parent_gone = functools.partial(_exit_now, folder)
    # The pipe closing is the quick signal; a new parent catches a pipe some other process keeps open.
    threading.Thread(target=watch_parent, args=(os.getppid(), parent_gone), name="rlm-worker-parent",
                     daemon=True).start()
    load_factory()  # before the first command: a spare worker waits fully warmed up
    channel = Channel(sys.stdin.buffer, outbox, parent_gone)
    # One sandbox after another: a closed sandbox's worker is kept for the next one.
    while True:
        command = channel.commands.get()
        if command["op"] == "close":  # no sandbox is open: its init failed
            channel.send({"op": "done"})
        elif command["op"] == "init":
            serve(channel, command)


if __name__ == "__main__":
    main()
