"""The cached eryx `SandboxFactory` every sandbox session is created from.

Only a factory session can be given a memory cap, a callback timeout other than
10 s and a callback count other than 1000. Building one takes 20-50 s, so it is
built once per (pyeryx version, CPU architecture), saved under the user's cache
folder and loaded (about 0.3-0.7 s) by later processes.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import eryx
from filelock import FileLock

from dspy_rlm.settings import cache_dir

__all__ = ["factory_path", "load_factory"]

log = logging.getLogger(__name__)

_factory: eryx.SandboxFactory | None = None
_factory_lock = threading.Lock()


def factory_path() -> Path:
    """Where the factory is cached: `$DSPY_RLM_CACHE_DIR` or `~/.cache/dspy-rlm`,
    file `eryx-<pyeryx version>-<machine>.factory`."""
    return cache_dir() / f"eryx-{eryx.__version__}-{platform.machine()}.factory"


def load_factory() -> eryx.SandboxFactory:
    """The process-wide factory: loaded from the cache, or built and cached.

    Thread-safe; processes sharing the cache folder build it at most once between
    them (a file lock guards the build)."""
    global _factory
    if _factory is None:
        with _factory_lock:
            if _factory is None:
                _factory = _load_or_build(factory_path())
    return _factory


def _build_factory() -> eryx.SandboxFactory:
    """Build a plain factory (kept separate so tests can stand in a fast fake)."""
    return eryx.SandboxFactory()


def _try_load(path: Path, *, delete_bad: bool) -> eryx.SandboxFactory | None:
    """Load and check `path`; None if it is missing or fails. A file that fails
    (truncated, corrupt, built by another pyeryx) is deleted if `delete_bad`
    (only under the build lock, so no process deletes a file another just wrote)."""
    if not path.is_file():
        return None
    try:
        factory = eryx.SandboxFactory.load(str(path))
        # load() barely checks the file; a corrupt one fails only when a session
        # is made, so make (and drop) one now. After the first, sessions cost ~1 ms.
        factory.create_session().execute("pass")
        return factory
    except Exception as exc:  # eryx raises InitializationError, but be broad: any failure means rebuild
        if delete_bad:
            log.warning("cached eryx factory %s failed to load (%s); deleting and rebuilding", path, exc)
            path.unlink(missing_ok=True)
        return None


def _load_or_build(path: Path) -> eryx.SandboxFactory:
    # Fast path without the file lock: files appear atomically via os.replace,
    # so a file that exists is complete (or damaged some other way).
    factory = _try_load(path, delete_bad=False)
    if factory is not None:
        return factory
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        # Another process may have built it while we waited for the lock.
        factory = _try_load(path, delete_bad=True)
        if factory is not None:
            return factory
        log.warning(
            "building the eryx sandbox factory (one-time, takes about 20-50 s); it will be cached at %s", path
        )
        start = time.perf_counter()
        factory = _build_factory()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        os.close(fd)
        try:
            factory.save(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.warning("built the eryx sandbox factory in %.1f s", time.perf_counter() - start)
        return factory
