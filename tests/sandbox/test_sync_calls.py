"""`Sandbox(sync_calls=True)`: host functions callable synchronously from any guest frame.

eryx callbacks can only be awaited; `_rlm_host.call_sync(name, ...)` goes over the sandbox's
loopback bridge instead (sandbox/syncbridge.py), so a plain method, a property or
`__setattr__` can wait for a host result.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from dspy_rlm.sandbox import SandboxLimits

pytestmark = pytest.mark.usefixtures("eryx_factory")

NESTED = '''
import _rlm_host
class Box:
    def __setattr__(self, name, value):
        object.__setattr__(self, name, _rlm_host.call_sync("add", value, 1))
    @property
    def doubled(self):
        def inner():
            return _rlm_host.call_sync("add", self.v, self.v)
        return inner()
b = Box()
b.v = 20
print(b.v, b.doubled)
'''


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_sync_calls_work_from_setattr_properties_and_nested_helpers(make, make_isolated, isolated):
    sandbox = (make_isolated if isolated else make)({}, {"add": lambda a, b: a + b}, sync_calls=True)
    result = sandbox.run(NESTED)
    assert result.error is None and result.stdout == "21 42\n"
    assert result.callbacks == 2 or isolated  # counted like awaited calls (the worker counts its own)
    # Each step opens its own connection (eryx sockets do not outlive an execute()).
    assert sandbox.run("print(_rlm_host.call_sync('add', 'a', 'b'))").stdout == "ab\n"


def test_sync_call_errors_reach_the_guest_scrubbed(make):
    def fails():
        raise ValueError("bad input")

    sandbox = make({}, {"fails": fails}, sync_calls=True)
    result = sandbox.run("import _rlm_host\ntry:\n    _rlm_host.call_sync('fails')\nexcept RuntimeError as e:\n"
                         "    print(e)\ntry:\n    _rlm_host.call_sync('missing')\nexcept RuntimeError as e:\n    print(e)")
    assert result.stdout == ("fails: ValueError: bad input\n"
                             "missing: missing is not a host function of this sandbox\n")


def test_sync_calls_are_off_unless_asked_for(make):
    result = make({}, {"add": lambda a, b: a + b}).run("import _rlm_host\n_rlm_host.call_sync('add', 1, 2)")
    assert "synchronous host calls are not enabled" in result.error


def test_a_sync_call_past_the_step_time_stops_the_step(make):
    sandbox = make({}, {"slow": lambda: time.sleep(5)}, sync_calls=True,
                   limits=SandboxLimits(step_timeout_s=1.0))
    started = time.perf_counter()
    # The guest catches the error, but the step is still reported as timed out and the guest restarted.
    result = sandbox.run("import _rlm_host\ntry:\n    _rlm_host.call_sync('slow')\nexcept Exception:\n    pass")
    assert result.error_kind == "timeout" and result.restarted
    assert time.perf_counter() - started < 3
    after_restart = sandbox.run("import _rlm_host\nprint(_rlm_host.call_sync('slow') is None)")
    assert after_restart.error_kind == "timeout"  # the bridge serves the restarted guest too


def test_sync_calls_count_towards_the_per_step_call_limit(make):
    sandbox = make({}, {"one": lambda: 1}, sync_calls=True, limits=SandboxLimits(max_callbacks_per_step=3))
    result = sandbox.run("import _rlm_host\nfor i in range(5):\n    _rlm_host.call_sync('one')")
    assert "too many host function calls in one step (limit 3)" in result.error


def _listener(host: str) -> tuple[socket.socket, int]:
    server = socket.create_server((host, 0))
    threading.Thread(target=lambda: server.accept()[0].sendall(b"reached"), daemon=True).start()
    return server, server.getsockname()[1]


def test_the_guest_reaches_no_other_loopback_service(make):
    server, port = _listener("127.0.0.1")
    with server:
        sandbox = make({}, {"one": lambda: 1}, sync_calls=True)
        result = sandbox.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port})).recv(10)")
        assert result.error and "not in allowed list" in result.error
        result = sandbox.run(f"import socket\nsocket.create_connection(('localhost', {port})).recv(10)")
        assert result.error and "reached" not in (result.stdout + result.error)


def test_the_bridge_serves_only_the_guest_holding_its_token(make):
    sandbox = make({}, {"one": lambda: 1}, sync_calls=True)
    bridge = sandbox._bridge
    with socket.create_connection((bridge.host, bridge.port), timeout=5) as intruder:
        intruder.sendall(b"not-the-token\n" + b"\0\0\0\x0b" + b'["one","[]"]')
        try:
            answer = intruder.recv(10)
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # closed without an answer


def test_keyword_arguments_may_use_any_name(make):
    sandbox = make({}, {"echo": lambda **kw: sorted(kw)}, sync_calls=True)
    result = sandbox.run("import _rlm_host\nprint(_rlm_host.call_sync('echo', name=1, label=2, args=3))")
    assert result.stdout == "['args', 'label', 'name']\n"


FLOOD = '''
import socket, struct, _rlm_host
host, port, token = _rlm_host._bridge_address
s = socket.create_connection((host, port))
s.sendall(token.encode() + b"\\n" + struct.pack(">I", 200 * 2**20) + b"x" * 1024)
try:
    print("closed" if s.recv(1) == b"" else "open")
except OSError:  # reset: closed too
    print("closed")
print(_rlm_host.call_sync("add", 1, 2))  # the guest's own bridge still answers, on a fresh connection
'''


def test_a_frame_larger_than_a_call_may_be_is_refused_before_it_is_buffered(make):
    sandbox = make({}, {"add": lambda a, b: a + b}, sync_calls=True, limits=SandboxLimits(step_timeout_s=10))
    result = sandbox.run(FLOOD)
    assert result.error is None and result.stdout == "closed\n3\n"


def test_a_failed_sync_call_does_not_leave_its_reply_for_the_next(make):
    def slow(x):
        time.sleep(1.5)
        return f"slow {x}"

    code = ("import _rlm_host\n_rlm_host.call_sync('fast', 'warm')\n"  # this step's connection
            "_rlm_host._bridge.settimeout(0.2)\n"
            "try:\n    _rlm_host.call_sync('slow', 'a')\nexcept Exception:\n    print('failed')\n"
            "print(_rlm_host.call_sync('fast', 'b'))")
    sandbox = make({}, {"slow": slow, "fast": lambda x: f"fast {x}"}, sync_calls=True,
                   limits=SandboxLimits(step_timeout_s=10))
    result = sandbox.run(code)
    assert result.stdout == "failed\nfast b\n", result
