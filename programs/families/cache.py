"""Generated tasks cached on disk, so a repeated run (the demo, a benchmark) does not regenerate them.

A 4 MB task takes a family about 1.5 s to generate and 20 ms to read back. The cache key is
the family, size and seed plus a digest of the family's generator source, so a change to the
generator never serves an old task. A file that cannot be read is regenerated and replaced.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from dspy_rlm import settings
from dspy_rlm.programs.families.base import Task, TaskFamily


def cached_task(family: TaskFamily, size: int, seed: int, folder: Path | None = None) -> Task:
    """`family.make_task(size, seed)`, read from the cache when an identical generator made it before."""
    path = (folder or settings.cache_dir() / "tasks") / f"{family.name}-{size}-{seed}-{_generator_digest(family)}.json"
    try:
        return Task(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # not cached yet, or unreadable: make it again
        pass
    task = family.make_task(size, seed)
    try:
        _write_atomically(path, json.dumps(asdict(task), ensure_ascii=False))
    except (OSError, TypeError, ValueError):  # a read-only cache or a task JSON cannot hold: still usable
        pass
    return task


def _generator_digest(family: TaskFamily) -> str:
    source = Path(inspect.getsourcefile(type(family)) or "").read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
