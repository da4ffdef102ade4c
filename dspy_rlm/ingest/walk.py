"""Which files the paths given name: folders walked recursively, in sorted order.

`include`/`exclude` are gitignore-style patterns (`*.py`, `logs/**/*.log`) matched against the
path below the folder given. `.git` folders are never entered; `.gitignore` files (in the folder
given and below) are honoured, each for its own subtree. What they leave out is not listed
(that is what the user asked for); a missing path or an empty folder is listed with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})
_LINKED = "a link to a folder, not followed (it could loop); give the folder itself to read it"
_EMPTY = "empty folder: no files in it (or none the include/exclude patterns and .gitignore let through)"


@dataclass(frozen=True)
class Candidate:
    """A file to read, or a path that yields none (`problem` = (status, reason))."""

    path: str  # where to read it
    shown: str  # the path the index shows
    kind: str = "unknown"
    problem: tuple[str, str] | None = None


def walk_paths(paths: Sequence[Any], *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
               gitignore: bool = True) -> Iterator[Candidate]:
    """The candidates of every path in order (see the module docstring)."""
    wanted, unwanted = _spec(include), _spec(exclude)
    several = len(paths) > 1
    for given in paths:
        given = os.fspath(given)
        if os.path.isdir(given):
            found = False
            for path, below, problem in _walk(given, unwanted, gitignore):
                if problem is not None or wanted is None or wanted.match_file(below):
                    found = found or problem is None
                    shown = os.path.join(given, below) if several else below
                    yield Candidate(path, shown, "folder" if problem else "unknown", problem)
            if not found:
                yield Candidate(given, given, "folder", ("skipped", _EMPTY))
        elif os.path.exists(given):
            yield Candidate(given, given)
        else:
            yield Candidate(given, given, "unknown", ("error", "no such file or folder"))


def _walk(top: str, unwanted: Any, gitignore: bool) -> Iterator[tuple[str, str, tuple[str, str] | None]]:
    """(path, path below `top` with '/' separators, None) of each file, pruning ignored folders;
    a linked folder, not followed (it may loop), comes with the reason instead of None."""
    ignores: list[tuple[str, Any]] = []  # (folder below top, its .gitignore spec), outermost first
    for folder, dirs, names in os.walk(top):
        below_dir = os.path.relpath(folder, top).replace(os.sep, "/")
        below_dir = "" if below_dir == "." else below_dir + "/"
        ignores = [(base, spec) for base, spec in ignores if below_dir.startswith(base)]
        if gitignore and ".gitignore" in names:
            spec = _gitignore(os.path.join(folder, ".gitignore"))
            if spec is not None:
                ignores.append((below_dir, spec))

        def ignored(below: str) -> bool:
            if unwanted is not None and unwanted.match_file(below):
                return True
            return any(spec.match_file(below[len(base):]) for base, spec in ignores)

        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not ignored(f"{below_dir}{d}/"))
        for name in [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            yield os.path.join(folder, name), below_dir + name, ("skipped", _LINKED)
        for name in sorted(names):
            below = below_dir + name
            if not ignored(below):
                yield os.path.join(folder, name), below, None


def _spec(patterns: tuple[str, ...]) -> Any:
    if not patterns:
        return None
    return _pathspec().GitIgnoreSpec.from_lines(patterns)


def _gitignore(path: str) -> Any:
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return _pathspec().GitIgnoreSpec.from_lines(lines)


def _pathspec() -> Any:
    try:
        import pathspec
    except ImportError:
        raise ImportError("reading folders with include/exclude patterns or a .gitignore needs the ask extra: "
                          "pip install 'dspy-rlm[ask]'") from None
    return pathspec
