"""The child process of an `IsolatedSandbox`: sandboxes, one at a time, driven over a pipe.

    python -m dspy_rlm.sandbox.worker

Messages are JSON lines. The parent sends `init`, then `run` / `set_inputs`
commands and finally `close`; the worker answers each with one `done` message, then
waits for the next `init` (the parent keeps a few idle workers). Whenever guest code
calls a host function, the worker sends a `call` message and waits for the parent's
`reply`: the function itself runs in the parent, so API keys never reach this
process. If the runtime aborts this process, the parent sees the pipe close and
starts another.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import sys
import threading
from dataclasses import asdict
from typing import Any, BinaryIO, Callable

from dspy_rlm.sandbox.factory import load_factory
from dspy_rlm.sandbox.limits import SandboxLimits
from dspy_rlm.sandbox.session import Sandbox


class Channel:
    """Both directions of the pipe: commands in a queue, calls waiting for replies."""

    def __init__(self, inbox: BinaryIO, outbox: BinaryIO) -> None:
        self._outbox = outbox
        self._write_lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self._next_id = 0
        self.call_timeout_s = 600.0  # set per sandbox, from its limits
        self.commands: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(inbox,), name="rlm-worker-reader", daemon=True).start()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with self._write_lock:
            self._outbox.write(data)
            self._outbox.flush()

    def _read(self, inbox: BinaryIO) -> None:
        for line in inbox:
            message = json.loads(line)
            if message["op"] == "reply":
                waiting = self._replies.pop(message["id"], None)
                if waiting is not None:
                    waiting.put(message)
            else:
                self.commands.put(message)
        self.commands.put({"op": "exit"})  # the parent is gone

    def host_function(self, name: str) -> Callable[..., Any]:
        """A stand-in for host function `name`: asks the parent to call it, waits for the answer."""
        def call(*args: Any, **kwargs: Any) -> Any:
            answer: queue.Queue = queue.Queue(maxsize=1)
            with self._write_lock:
                self._next_id += 1
                call_id = self._next_id
                self._replies[call_id] = answer
            self.send({"op": "call", "id": call_id, "name": name, "args": args, "kwargs": kwargs})
            try:
                reply = answer.get(timeout=self.call_timeout_s)
            except queue.Empty:
                self._replies.pop(call_id, None)
                raise TimeoutError(f"{name} did not answer within {self.call_timeout_s:g} s") from None
            if "error" in reply:
                raise host_error(reply["error_type"])(reply["error"])
            return reply["value"]

        call.__name__ = name
        return call


@functools.lru_cache(maxsize=64)
def host_error(type_name: str) -> type[Exception]:
    """An exception class named like the one the host function raised, which is what the
    guest is shown (`Type: message`), as with an in-process sandbox."""
    return type(type_name, (Exception,), {})


def serve(channel: Channel, init: dict[str, Any]) -> bool:
    """One sandbox, from `init` until `close`; False when the parent has gone."""
    channel.call_timeout_s = init["limits"]["callback_timeout_s"] + 5
    functions = {name: channel.host_function(name) for name in init["functions"]}
    try:
        sandbox = Sandbox(init["inputs"], functions, limits=SandboxLimits(**init["limits"]),
                          setup_code=init["setup_code"], max_output_chars=init["max_output_chars"])
    except Exception as exc:
        channel.send(_failure(exc))
        return True
    channel.send({"op": "done", "variables": sandbox.variables})
    while True:
        command = channel.commands.get()
        if command["op"] in ("close", "exit"):
            sandbox.close()
            channel.send({"op": "done"})
            return command["op"] == "close"
        try:
            if command["op"] == "run":
                result = asdict(sandbox.run(command["code"], timeout_s=command["timeout_s"]))
                channel.send({"op": "done", "result": result, "variables": sandbox.variables})
            elif command["op"] == "set_inputs":
                sandbox.set_inputs(command["inputs"])
                channel.send({"op": "done", "variables": sandbox.variables})
        except Exception as exc:
            channel.send(_failure(exc))


def _failure(exc: Exception) -> dict[str, Any]:
    # The parent raises it again, with the same type when it is a builtin one.
    return {"op": "done", "error": str(exc), "error_type": type(exc).__name__}


def main() -> None:
    # The protocol owns the real stdout; anything else printed here goes to stderr.
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    load_factory()  # before the first command: a spare worker waits fully warmed up
    channel = Channel(sys.stdin.buffer, outbox)
    # One sandbox after another: a closed sandbox's worker is kept for the next one.
    while True:
        command = channel.commands.get()
        if command["op"] == "exit":
            return
        if command["op"] == "close":  # no sandbox is open: its init failed
            channel.send({"op": "done"})
        elif command["op"] == "init" and not serve(channel, command):
            return


if __name__ == "__main__":
    main()
