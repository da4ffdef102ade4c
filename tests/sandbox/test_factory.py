"""The cached eryx SandboxFactory: path, process cache, build lock, rebuild."""

from __future__ import annotations

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
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([path.name, path.name + ".lock"])
    built.create_session().execute("x = 1")
    # Second time: loaded from the file, no build.
    factory_mod._load_or_build(path)
    assert fake_build == [1]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_file_is_deleted_and_rebuilt(cache_dir, fake_build, damage):
    path = factory_path()
    good = REAL_PATH.read_bytes()
    path.write_bytes(b"not a factory" if damage == "garbage" else good[: len(good) // 3])
    factory = factory_mod._load_or_build(path)
    assert fake_build == [1]
    assert path.read_bytes() == good
    assert factory.create_session().execute("print(1)").stdout_text == "1\n"


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
