"""The cached eryx SandboxFactory: path, process cache, build lock, checksum, rebuild."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import eryx
import pytest

from dspy_rlm.sandbox import factory as factory_mod
from dspy_rlm.sandbox.factory import factory_path, load_factory

ROOT = Path(__file__).resolve().parents[2]
REAL_PATH = factory_path()  # where the eryx_factory fixture's file lives, before tests move the cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DSPY_RLM_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def fake_build(eryx_factory, monkeypatch):
    """Stand in for the 20-50 s build: hand back the already cached factory."""
    builds = []

    def build():
        builds.append(1)
        return eryx.SandboxFactory.load(str(REAL_PATH))

    monkeypatch.setattr(factory_mod, "_build_factory", build)
    return builds


@pytest.fixture
def loaded(monkeypatch):
    """The SHA-256 of every file the factory module hands to eryx's loader."""
    seen: list[str] = []
    real = factory_mod._load_file

    def load(path):
        seen.append(_sha256(path))
        return real(path)

    monkeypatch.setattr(factory_mod, "_load_file", load)
    return seen


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _damage(path: Path, at: float = 0.05, length: int = 65_536) -> bytes:
    """Change `length` bytes of `path` in place (same size), as a failing disk might; the new bytes."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + length] = bytes(b ^ 0xA5 for b in data[start:start + length])
    path.write_bytes(bytes(data))
    return bytes(data)


def test_factory_path_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("DSPY_RLM_CACHE_DIR", raising=False)
    name = f"eryx-{eryx.__version__}-{platform.machine()}.factory"
    assert factory_path() == Path.home() / ".cache" / "dspy-rlm" / name
    monkeypatch.setenv("DSPY_RLM_CACHE_DIR", str(tmp_path))
    assert factory_path() == tmp_path / name


def test_load_factory_is_cached_per_process(eryx_factory):
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(load_factory())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(f is eryx_factory for f in seen)


def test_builds_when_missing_and_saves_atomically(cache_dir, fake_build, caplog):
    path = factory_path()
    with caplog.at_level(logging.WARNING, logger="dspy_rlm.sandbox.factory"):
        built = factory_mod._load_or_build(path)
    assert fake_build == [1]
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert "building the eryx sandbox factory" in caplog.text
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([path.name, path.name + ".lock",
                                                                  path.name + ".sha256"])
    built.create_session().execute("x = 1")
    # Second time: loaded from the file, no build.
    factory_mod._load_or_build(path)
    assert fake_build == [1]


def test_the_checksum_is_written_beside_the_file_in_sha256sum_format(cache_dir, fake_build):
    path = factory_path()
    factory_mod._load_or_build(path)
    recorded = (cache_dir / (path.name + ".sha256")).read_text()
    assert recorded == f"{_sha256(path)}  {path.name}\n"  # `sha256sum -c` checks it


@pytest.mark.parametrize("damage", ["garbage", "truncated", "same size, bytes changed"])
def test_a_damaged_cache_file_is_set_aside_and_rebuilt_without_being_loaded(cache_dir, fake_build, loaded, damage):
    """A file that no longer matches its checksum never reaches eryx (whose loader can
    crash the process on it): it is moved aside, and a new one is built."""
    path = factory_path()
    factory_mod._load_or_build(path)
    good = path.read_bytes()
    if damage == "same size, bytes changed":
        damaged = _damage(path)
    else:
        damaged = b"not a factory" if damage == "garbage" else good[: len(good) // 3]
        path.write_bytes(damaged)
    factory = factory_mod._load_or_build(path)
    assert fake_build == [1, 1]
    assert hashlib.sha256(damaged).hexdigest() not in loaded
    assert path.with_name(path.name + ".damaged").read_bytes() == damaged
    assert path.read_bytes() == good and factory_mod._problem(path) is None
    assert factory.create_session().execute("print(1)").stdout_text == "1\n"


def test_a_cache_file_without_a_checksum_is_rebuilt_once_not_trusted(cache_dir, fake_build, loaded):
    """A file cached by an older version (no checksum) cannot be proven intact: it is
    rebuilt once, and loaded from the cache from then on."""
    path = factory_path()
    path.write_bytes(REAL_PATH.read_bytes())
    factory_mod._load_or_build(path)
    assert fake_build == [1] and loaded == []
    assert not path.with_name(path.name + ".damaged").exists()  # not damaged, only unproven
    factory_mod._load_or_build(path)
    assert fake_build == [1] and loaded == [_sha256(path)]


def test_a_mismatch_seen_without_the_lock_moves_nothing(cache_dir, fake_build, monkeypatch):
    """Outside the build lock a mismatch may be another process halfway through replacing
    the file and its checksum: only a check under the lock may set a file aside."""
    path = factory_path()
    factory_mod._load_or_build(path)
    checks = []
    real_problem = factory_mod._problem

    def problem(p):
        checks.append(p)
        return "checksum mismatch" if len(checks) == 1 else real_problem(p)

    monkeypatch.setattr(factory_mod, "_problem", problem)
    factory_mod._load_or_build(path)
    assert len(checks) == 2 and fake_build == [1]  # checked again under the lock, and then loaded
    assert not path.with_name(path.name + ".damaged").exists()


def test_parallel_processes_build_once(cache_dir, eryx_factory):
    """Three processes start with no cached file; exactly one builds it."""
    counter = cache_dir / "builds.txt"
    script = textwrap.dedent(
        f"""
        import time, eryx
        from dspy_rlm.sandbox import factory as f
        def build():
            with open({str(counter)!r}, "a") as out:
                out.write("built\\n")
            time.sleep(1.0)  # widen the window for a second builder
            return eryx.SandboxFactory.load({str(REAL_PATH)!r})
        f._build_factory = build
        f.load_factory().create_session().execute("pass")
        """
    )
    env = {**os.environ, "DSPY_RLM_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert counter.read_text() == "built\n"
    assert factory_path().is_file()


@pytest.mark.slow
def test_a_process_given_a_damaged_cache_rebuilds_it_and_runs(tmp_path, eryx_factory):
    """End to end, with the real build (20-50 s): bytes that make eryx's loader kill the
    process (SIGILL on pyeryx 0.11) are caught by the checksum, in a child process so a
    regression cannot kill pytest."""
    path = tmp_path / REAL_PATH.name
    path.write_bytes(REAL_PATH.read_bytes())
    (tmp_path / (path.name + ".sha256")).write_text(f"{_sha256(path)}  {path.name}\n")
    _damage(path)
    script = "from dspy_rlm.sandbox.factory import load_factory\n" \
             "print(load_factory().create_session().execute('print(6 * 7)').stdout_text, end='')"
    env = {**os.environ, "DSPY_RLM_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr[-2000:]
    assert factory_mod._problem(path) is None
