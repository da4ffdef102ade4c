# Synchronous host calls, guest side. This text is appended to guest_module.py's and runs
# in the guest as part of module `_rlm_host` (it uses that module's G, _dumps, _loads,
# _encode_call and CallbackLimitError).
#
# eryx's host callbacks can only be awaited: a plain function, a property or a __setattr__
# cannot wait for one. A blocking socket read can wait anywhere, so `call_sync` sends the
# call over a loopback connection to the host's bridge (sandbox/syncbridge.py) and blocks
# for the reply. Frames are a 4-byte big-endian length and UTF-8 JSON:
#   guest -> host: [name, arguments as JSON text]
#   host -> guest: [kind, value], kind "ok" (value: the result as JSON text), "error",
#                  "limit" (too many calls this step) or "stop" (the step's time is up).
import socket as _socket
import struct as _struct

_bridge = None  # this execute()'s connection: eryx's sockets do not outlive the execute() that opened them
_bridge_address = None


def _connect_bridge(address):
    global _bridge_address
    _bridge_address = address


def _new_step():
    global _bridge
    _bridge = None


def _connection():
    global _bridge
    if _bridge is None:
        if not _bridge_address:
            raise RuntimeError("synchronous host calls are not enabled in this sandbox")
        host, port, token = _bridge_address
        connection = _socket.create_connection((host, port))
        connection.sendall(token.encode("ascii") + b"\n")
        _bridge = connection
    return _bridge


def _receive(count):
    data = b""
    while len(data) < count:
        chunk = _bridge.recv(count - len(data))
        if not chunk:
            raise RuntimeError("the host closed the synchronous call bridge")
        data += chunk
    return data


def call_sync(name, /, *args, **kwargs):
    """Call host function `name` and wait for its result, from any frame (a method,
    a property, __setattr__, a nested helper, a lambda): no await needed."""
    return _call(name, name, args, kwargs)


def call_as(label, name, /, *args, **kwargs):
    """`call_sync(name, ...)`, with errors naming `label` (a tool behind a dispatching function)."""
    return _call(label, name, args, kwargs)


def _call(label, name, args, kwargs):
    global _bridge
    connection = _connection()
    request = _dumps([name, _encode_call(label, args, kwargs)], ensure_ascii=False).encode("utf-8")
    try:
        connection.sendall(_struct.pack(">I", len(request)) + request)
        (size,) = _struct.unpack(">I", _receive(4))
        kind, value = _loads(_receive(size).decode("utf-8"))
    except BaseException:
        # A late reply must never answer the next call: drop this connection (the next call opens another).
        _bridge = None
        try:
            connection.close()
        except Exception:
            pass
        raise
    if kind == "ok":
        return _loads(value)
    if kind == "limit":
        raise CallbackLimitError(
            f"{label}: too many host function calls in one step (limit {_limits['calls']}); "
            "batch the work or spread it over several steps")
    if kind == "stop":
        raise TimeoutError(f"{label}: {value}")
    raise RuntimeError(f"{label}: {value}")
