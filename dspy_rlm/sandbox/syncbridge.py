"""Synchronous host calls from any guest frame: the host's side of `guest_sync.py`.

eryx (0.11) lets guest code reach a host callback only by awaiting it, so a call from a
plain method, a property or `__setattr__` cannot wait for its result (the code rewrite
in `rewrite.py` reaches only calls it can see by name). A blocking socket read can wait
anywhere, so a sandbox built with `sync_calls=True` also listens on a loopback address
and the guest's `_rlm_host.call_sync(name, ...)` sends each call there and blocks until
the reply comes. The call runs exactly as an awaited one does (same step context, time
bound, call count and error scrubbing).

What the guest can reach: the session's network is opened to one address only, a
random one in 127.0.0.0/8 (127.0.0.1 where the system has no other loopback address),
and the bridge accepts one connection per guest boot, the one presenting that boot's
random token. A host service that listens on *every* interface (0.0.0.0) also answers
on that address, so a guest could open a connection to it; services bound to 127.0.0.1
or to a real interface cannot be reached.
"""

from __future__ import annotations

import json
import math
import secrets
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

import eryx

__all__ = ["SyncBridge", "reply_with"]

# (function name, JSON arguments) -> (kind, value); kinds as in guest_sync.py.
Handler = Callable[[str, str], tuple[str, str]]
# A call's arguments or reply: more would make the host buffer what the guest's own memory cap forbids it.
_MAX_FRAME = 32 * 2**20


def reply_with(callbacks: Mapping[str, Callable[[str], Any]], over_limit: Callable[[], bool]) -> Handler:
    """A handler running the sandbox's eryx callbacks (name -> callback of JSON arguments):
    a call through the bridge is bounded, counted and scrubbed as an awaited one is."""
    def handle(name: str, payload: str) -> tuple[str, str]:
        callback = callbacks.get(name)
        if callback is None:
            return "error", f"{name} is not a host function of this sandbox"
        if over_limit():
            return "limit", ""
        try:
            reply = callback(payload)
        except eryx.SuspendCallback as stop:  # the step's time is up: the guest is stopped after the reply
            return "stop", str(stop)
        if isinstance(reply, dict):
            return "error", str(reply.get("__rlm_error__"))
        return "ok", reply

    return handle


class SyncBridge:
    """A loopback endpoint serving one guest's synchronous host calls with `handler`."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server, self.host = _listen()
        self.port = self._server.getsockname()[1]
        self._token = ""
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="rlm-sync-bridge", daemon=True).start()

    def network(self, step_timeout_s: float) -> eryx.NetConfig:
        """The session's network: this bridge's address and nothing else. A guest waits for a reply as long as
        a step may last (eryx's own default, 60 s, would cut longer calls and outlast shorter steps)."""
        wait_ms = math.ceil(step_timeout_s * 1000) + 1000
        return eryx.NetConfig(allowed_hosts=[self.host], io_timeout_ms=wait_ms,
                              connect_timeout_ms=min(wait_ms, 5000)).allow_localhost()

    def address(self) -> tuple[str, int, str]:
        """(host, port, token) for the next guest boot; earlier connections are closed."""
        with self._lock:
            self._token = secrets.token_hex(16)
            old, self._connections = self._connections, []
        for connection in old:
            _close(connection)
        return self.host, self.port, self._token

    def close(self) -> None:
        with self._lock:
            self._closed = True
            old, self._connections = self._connections, []
        _close(self._server)
        for connection in old:
            _close(connection)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(connection,), name="rlm-sync-call", daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                token = _read_line(connection)
            except OSError:
                return
            with self._lock:
                if self._closed or not self._token or not secrets.compare_digest(token, self._token):
                    return
                # One live connection per guest: a new one (the guest dropped the last) replaces it.
                old, self._connections = self._connections, [connection]
            for stale in old:
                _close(stale)
            try:
                while (request := _read_frame(connection)) is not None:
                    name, payload = json.loads(request)
                    kind, value = self._handler(str(name), str(payload))
                    _write_frame(connection, json.dumps([kind, value], ensure_ascii=False).encode("utf-8"))
            except Exception:  # the guest went away (a reset), or sent garbage: end this connection quietly
                return


def _listen() -> tuple[socket.socket, str]:
    """A listening socket on a random loopback address (127.0.0.1 if no other binds)."""
    candidates = [f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(254) + 1}.{secrets.randbelow(253) + 2}"
                  for _ in range(3)]
    for host in [*candidates, "127.0.0.1"]:
        try:
            server = socket.create_server((host, 0))
        except OSError:  # e.g. macOS configures only 127.0.0.1
            continue
        return server, host
    raise OSError("no loopback address could be bound for the sandbox's synchronous call bridge")


def _read_line(connection: socket.socket, limit: int = 64) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(1)
        if not chunk or len(data) > limit:
            raise OSError("no token")
        data += chunk
    return data[:-1].decode("ascii", "replace").encode("ascii", "replace").decode("ascii")


def _read_exact(connection: socket.socket, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        chunk = connection.recv(min(count - len(data), 2**20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _read_frame(connection: socket.socket) -> bytes | None:
    header = _read_exact(connection, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    if size > _MAX_FRAME:
        raise ValueError("frame too large")
    return _read_exact(connection, size)


def _write_frame(connection: socket.socket, data: bytes) -> None:
    connection.sendall(struct.pack(">I", len(data)) + data)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
