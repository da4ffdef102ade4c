"""The cached eryx `SandboxFactory` every sandbox session is created from.

Only a factory session can be given a memory cap, a callback timeout other than
10 s and a callback count other than 1000. Building one takes 20-50 s, so it is
built once per (pyeryx version, CPU architecture), saved under the user's cache
folder and loaded (about 0.3-0.7 s) by later processes.

eryx's loader trusts the file: damaged bytes can kill the process that loads it
(SIGILL/SIGSEGV) or crash it mid-step. So a SHA-256 checksum is written beside
the file after a verified build (`<file>.sha256`, in `sha256sum` format) and
checked before every load; a file that fails the check, or has no checksum, is
never loaded: it is moved aside (`<file>.damaged`) and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import threading
import time
from pathlib import Path

import eryx
from filelock import FileLock

from dspy_rlm.fileio import replacing
from dspy_rlm.settings import cache_dir

__all__ = ["checksum_path", "factory_loaded", "factory_path", "load_factory"]

log = logging.getLogger(__name__)

_factory: eryx.SandboxFactory | None = None
_factory_lock = threading.Lock()


def factory_path() -> Path:
    """Where the factory is cached: `$DSPY_RLM_CACHE_DIR` or `~/.cache/dspy-rlm`,
    file `eryx-<pyeryx version>-<machine>.factory`."""
    return cache_dir() / f"eryx-{eryx.__version__}-{platform.machine()}.factory"


def checksum_path(path: Path) -> Path:
    """The checksum file of the factory file `path`: `<file>.sha256`."""
    return path.with_name(path.name + ".sha256")


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


def factory_loaded() -> bool:
    """Whether this process has loaded (or built) the factory already: its next sandbox starts warm."""
    return _factory is not None


def _build_factory() -> eryx.SandboxFactory:
    """Build a plain factory (kept separate so tests can stand in a fast fake)."""
    return eryx.SandboxFactory()


def _load_file(path: Path) -> eryx.SandboxFactory:
    """eryx's loader, the one call that reads a cached file (a seam for tests)."""
    return eryx.SandboxFactory.load(str(path))


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:  # about 35 ms for the 45 MB file
        return hashlib.file_digest(file, "sha256").hexdigest()


_NO_CHECKSUM = "it has no checksum (cached by an older dspy-rlm), so it cannot be proven intact"


def _problem(path: Path) -> str | None:
    """Why `path` must not be loaded, or None when it matches its checksum."""
    if not path.is_file():
        return "missing"
    try:
        recorded = checksum_path(path).read_text().split()[0]
    except (OSError, IndexError):
        return _NO_CHECKSUM
    try:
        actual = _sha256(path)
    except OSError:  # set aside by another process since is_file(): as if never there
        return "missing"
    if actual != recorded:
        return "it does not match its checksum (the file is damaged)"
    return None


def _verified(factory: eryx.SandboxFactory) -> eryx.SandboxFactory:
    # A session is where a bad factory fails (its first costs ~0.1 s; later ones ~1 ms).
    factory.create_session().execute("pass")
    return factory


def _try_load(path: Path) -> tuple[eryx.SandboxFactory | None, str | None]:
    """(the factory, None) if `path` passes its checksum and loads; else (None, why not)."""
    problem = _problem(path)
    if problem is not None:
        return None, problem
    try:
        return _verified(_load_file(path)), None
    except Exception as exc:  # e.g. a file another build of the same pyeryx version wrote
        return None, f"it failed to load ({exc})"


def _load_or_build(path: Path) -> eryx.SandboxFactory:
    # Fast path without the file lock: it only reads, and a mismatch here may be a builder
    # between replacing the file and its checksum, so it is checked again under the lock.
    factory, _ = _try_load(path)
    if factory is not None:
        return factory
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        factory, problem = _try_load(path)  # another process may have built it meanwhile
        if factory is not None:
            return factory
        if problem != "missing":
            _set_aside(path, problem)
        return _build_and_save(path)


def _set_aside(path: Path, problem: str | None) -> None:
    """Remove a file that must not be loaded; a damaged one is kept as `<file>.damaged`
    (only the last, for a bug report)."""
    checksum_path(path).unlink(missing_ok=True)
    if problem == _NO_CHECKSUM:
        log.warning("cached eryx factory %s will not be loaded: %s; rebuilding it", path, problem)
        path.unlink(missing_ok=True)
        return
    aside = path.with_name(path.name + ".damaged")
    log.warning("cached eryx factory %s will not be loaded: %s; moved to %s and rebuilding", path, problem, aside)
    try:
        os.replace(path, aside)
    except OSError:
        path.unlink(missing_ok=True)


def _build_and_save(path: Path) -> eryx.SandboxFactory:
    """Build and verify a factory, then save it and its checksum (each written whole: `replacing`)."""
    log.warning("building the eryx sandbox factory (one-time, takes about 20-50 s); it will be cached at %s", path)
    start = time.perf_counter()
    factory = _verified(_build_factory())
    with replacing(path) as tmp:
        factory.save(str(tmp))
        digest = _sha256(tmp)
    # The file first, then its checksum: a reader between the two sees a mismatch and waits for the lock.
    with replacing(checksum_path(path)) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")
    log.warning("built the eryx sandbox factory in %.1f s", time.perf_counter() - start)
    return factory


