"""Sandbox containment: timeouts, memory and crashes restart cleanly; no host files or network; folders are cleaned up."""

from __future__ import annotations

import gc
import glob
import os
import tempfile
import time

import pytest

from dspy_rlm.errors import SandboxClosed, SandboxUnavailable
from dspy_rlm.sandbox import Sandbox, SandboxLimits
from tests.sandbox.helpers import SETUP, ok

pytestmark = pytest.mark.usefixtures("eryx_factory")

FAST = SandboxLimits(step_timeout_s=1.5)


# ---------------------------------------------------------------- recovery


def test_cpu_timeout_restarts_and_restores_inputs(make):
    sb = make({"context": "ctx"}, {"f": lambda: 1}, limits=FAST, setup_code=SETUP)
    ok(sb, "a = 1\nb = [2]")
    start = time.perf_counter()
    r = sb.run("print('started')\nwhile True:\n    pass")
    assert time.perf_counter() - start < 5
    assert r.error_kind == "timeout" and r.restarted
    assert r.error == "TimeoutError: the step ran longer than 1.5 s and was stopped"
    assert r.stdout == "started\n"
    assert r.lost_variables == ["a", "b"]
    assert r.notes == ["sandbox restarted after a timeout: variables lost: a, b"]
    assert sb.variables == []
    assert ok(sb, "print(context, f(), 'a' in globals())").stdout == "ctx 1 False\n"
    assert sb.run("FINAL(2)").submission == {"answer": 2}


def test_timeout_while_awaiting_a_slow_host_function(make):
    calls = []

    def slow(tag):
        calls.append(tag)
        time.sleep(2.5)
        return tag

    sb = make({}, {"slow": slow}, limits=FAST)
    r = sb.run("x = slow('first')\nprint('late output')\ny = slow('second')")
    assert r.error_kind == "timeout" and r.restarted
    assert "late output" not in r.stdout
    r = ok(sb, "import asyncio\nawait asyncio.sleep(0.5)\nprint('fresh')")
    time.sleep(0.5)
    r2 = ok(sb, "print('x' in globals())")
    assert r.stdout == "fresh\n" and r2.stdout == "False\n"
    assert calls == ["first"]


def test_no_new_host_call_after_the_deadline(make):
    sb = make({}, {"tick": lambda: time.sleep(0.4)}, limits=SandboxLimits(step_timeout_s=1.0))
    r = sb.run("for i in range(10):\n    tick()\n    print(i)")
    assert r.error_kind == "timeout" and r.restarted
    assert r.callbacks <= 4
    assert r.stdout.startswith("0\n1\n")


def test_host_call_after_the_deadline_suspends_the_step(make):
    holder = []

    def expire():  # make the step look overdue from inside a host call
        holder[0]._shared.step.deadline = 0

    sb = make({"context": "c"}, {"expire": expire, "f": lambda: 1})
    holder.append(sb)
    ok(sb, "v = 1")
    r = sb.run("expire()\nprint('between')\nf()\nprint('not reached')")
    assert r.error_kind == "timeout" and r.restarted and r.lost_variables == ["v"]
    assert r.stdout == "between\n" and r.callbacks == 2
    assert ok(sb, "print(context, f())").stdout == "c 1\n"


def test_memory_bomb_is_contained(make):
    sb = make({"context": "c"}, limits=SandboxLimits(memory_bytes=256 * 2**20, step_timeout_s=20))
    ok(sb, "keep = 1")
    r = sb.run("x = []\nwhile True:\n    x.append(bytearray(10_000_000))")
    assert r.error_kind == "memory"
    assert "MemoryError" in r.error
    ok(sb, "x = None")
    assert ok(sb, "print(context, keep if 'keep' in globals() else 'reset')").stdout in ("c 1\n", "c reset\n")


def test_crash_restarts(make):
    sb = make({"context": "c"})
    ok(sb, "v = 1")
    r = sb.run("import posix\nposix.abort()")
    assert r.error_kind == "crash" and r.restarted and r.lost_variables == ["v"]
    assert r.error.startswith("SandboxCrash") and "wasm" not in r.error
    assert ok(sb, "print(context)").stdout == "c\n"


# ---------------------------------------------------------------- isolation and lifetime


def test_no_host_files_and_read_only_inputs(make, tmp_path, monkeypatch):
    monkeypatch.setenv("RLM_TEST_SECRET", "hunter2")
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    sb = make({"context": "c", "cfg": {"a": 1}})
    code = (
        "import os\nprint(sorted(os.listdir('/inputs')))\n"
        f"for p in ['/etc/passwd', {str(secret)!r}, '/inputs/../etc/passwd']:\n"
        "    try:\n        open(p).read(); print('READ', p)\n"
        "    except OSError as e:\n        print(type(e).__name__)\n"
        "try:\n    open('/inputs/new.txt', 'w')\nexcept OSError as e:\n    print(type(e).__name__)\n"
        "print(sorted(os.environ))"
    )
    r = ok(sb, code)
    lines = r.stdout.splitlines()
    assert lines[0] == "['cfg.json', 'context.txt']"
    assert "READ" not in r.stdout
    assert lines[4] == "PermissionError"
    assert "RLM_TEST_SECRET" not in lines[5] and "'HOME'" not in lines[5]


def test_network_is_off(make):
    sb = make({})
    r = sb.run("import socket\ns = socket.socket()\ns.connect(('93.184.216.34', 80))")
    assert r.error_kind == "exception" and not r.restarted
    assert "networking not enabled" in r.error


def test_setup_code_errors_fail_construction_without_leaking(make):
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "dspy-rlm-inputs-*")))
    with pytest.raises(SandboxUnavailable, match="(?s)setup_code failed:.*NameError"):
        Sandbox({"c": "x"}, setup_code="undefined_name")
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "dspy-rlm-inputs-*"))) == before


def test_close_is_idempotent_and_final(make):
    sb = make({"c": "x"})
    folder = sb._folder
    assert os.path.isdir(folder)
    with sb:
        ok(sb, "y = 1")
    assert not os.path.exists(folder)
    sb.close()
    with pytest.raises(SandboxClosed):
        sb.run("print(1)")


def test_many_sandboxes_do_not_leak_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # only this test's folders are counted
    pattern = os.path.join(tempfile.gettempdir(), "dspy-rlm-inputs-*")
    before = set(glob.glob(pattern))
    for i in range(25):
        with Sandbox({"c": f"text {i}"}) as sb:
            assert sb.run("print(c)").stdout == f"text {i}\n"
    for i in range(5):  # dropped without close(): collected with the object
        Sandbox({"c": "x"}).run("pass")
    gc.collect()
    assert set(glob.glob(pattern)) == before == set()


def test_a_run_can_shorten_its_own_time_limit_but_not_extend_it():
    with Sandbox({}, limits=SandboxLimits(step_timeout_s=30)) as box:
        short = box.run("while True:\n    pass", timeout_s=0.5)
        assert short.error_kind == "timeout" and "0.5 s" in short.error
        assert box.run("print('next')", timeout_s=100).stdout == "next\n"
