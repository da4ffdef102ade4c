"""An IsolatedSandbox's worker process lives no longer than the process that started it,
and when a worker dies the step says how."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dspy_rlm.sandbox import worker

pytestmark = pytest.mark.usefixtures("eryx_factory")

ROOT = Path(__file__).resolve().parents[2]

# A host whose step waits inside a host function for far longer than the test.
_HOST = textwrap.dedent(
    """
    import sys, time
    from dspy_rlm.sandbox import IsolatedSandbox, SandboxLimits

    def wait():
        print("in callback", flush=True)
        time.sleep(600)

    limits = SandboxLimits(callback_timeout_s=300, step_timeout_s=400)
    sandbox = IsolatedSandbox({}, {"wait": wait}, limits=limits)
    print(sandbox._worker.process.pid, flush=True)
    sandbox.run("wait()")
    """
)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (whoever adopted it may not reap it)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_exits_soon_after_its_host_is_killed_mid_callback():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    host = subprocess.Popen([sys.executable, "-c", _HOST], stdout=subprocess.PIPE, text=True, env=env)
    workers: list[int] = []
    try:
        worker_pid = int(host.stdout.readline())
        assert host.stdout.readline() == "in callback\n"
        workers = _children(host.pid)  # the busy worker and the spare one
        assert worker_pid in workers
        folders = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2].decode() for pid in workers]
        assert all(Path(folder).is_dir() for folder in folders)
        host.kill()
        host.wait(timeout=30)
        deadline = time.monotonic() + 30  # the callback timeout is 300 s
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, workers))
        assert not any(Path(folder).exists() for folder in folders)  # the inputs went with the worker
    finally:
        host.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_parent_watch_fires_once_the_parent_process_changes():
    """The fallback for a pipe that stays open (another process holding its end): the
    worker also notices that it has been handed to a new parent."""
    parents = iter([41, 41, 1])
    gone = []
    worker.watch_parent(41, lambda: gone.append(True), interval_s=0.0, getppid=lambda: next(parents))
    assert gone == [True]


def test_a_worker_killed_from_outside_is_reported_as_killed_not_as_deep_data(make_isolated):
    holder = {}

    def kill_worker() -> None:
        os.kill(holder["sandbox"]._worker.process.pid, signal.SIGKILL)
        time.sleep(5)

    sandbox = holder["sandbox"] = make_isolated({"context": "abc"}, {"kill_worker": kill_worker})
    folder = sandbox._worker.folder
    died = sandbox.run("kill_worker()")
    assert not os.path.exists(folder)  # a killed worker cannot clean up: the host does
    assert died.error_kind == "crash" and died.restarted
    assert "killed" in died.error and "SIGKILL" in died.error
    assert "nested" not in died.error


def test_a_worker_the_runtime_aborts_on_deep_data_points_at_the_nesting(make_isolated):
    died = make_isolated().run("import json\nx = json.loads('[' * 100000 + ']' * 100000)")
    assert died.error_kind == "crash" and died.restarted
    assert "SIGABRT" in died.error and "nested thousands deep" in died.error
