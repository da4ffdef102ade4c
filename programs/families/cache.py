"""Generated tasks cached on disk, so a repeated run (the demo, a benchmark) does not regenerate them.

A 4 MB task takes a family about 1.5 s to generate and 20 ms to read back. The cache key is
the family, size and seed plus a digest of the families package's source (every generator and
the helpers they share), so a change to a generator never serves an old task. A file that cannot
be read is regenerated and replaced.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict
from pathlib import Path

from dspy_rlm import settings
from dspy_rlm.fileio import replacing
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
        with replacing(path) as temporary:
            temporary.write_text(json.dumps(asdict(task), ensure_ascii=False), encoding="utf-8")
    except (OSError, TypeError, ValueError):  # a read-only cache or a task JSON cannot hold: still usable
        pass
    return task


def _generator_digest(family: TaskFamily) -> str:
    # Every module of the families package, not only the family's own: generators share helpers
    # (base, labels), and a change to any of them must not serve an old task.
    digest = hashlib.sha256(family.name.encode())
    for source in sorted(Path(inspect.getsourcefile(TaskFamily) or "").parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:12]
