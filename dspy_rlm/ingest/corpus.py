"""Files and folders as one `context` text and a `files` index the model can navigate.

Each included file's text follows a header line (`FileEntry.header`, parsed back by
`parse_header` / `split_context`), so `context[e.offset : e.offset + e.chars]` is file `e`'s text.
Conversions are cached by content hash (`ingest.cache`); the context is assembled from the
cached texts, as a `str` when small and otherwise as a `TextFile` streamed to disk, never whole
in host memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dspy_rlm import settings
from dspy_rlm.ingest import cache as conversion_cache
from dspy_rlm.ingest.convert import Unreadable, detect_type, human_size, type_by_name
from dspy_rlm.ingest.walk import Candidate, walk_paths
from dspy_rlm.sandbox.inputs import TextFile

_HEADER = "===== file: {path} ({type}, {size} bytes) =====\n"
_HEADER_RE = re.compile(r"^===== file: (?P<path>.*) \((?P<type>[a-z]+), (?P<size>\d+) bytes\) =====$", re.M)
_SEPARATOR = "\n"  # after each file's text, so the next header starts a line
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """One row of the `files` index the model sees (see the module docstring for `offset`/`chars`)."""

    path: str  # relative to the folder given (a file given: as given); prefixed by the folder when several
    type: str  # text, markdown, code, json, jsonl, csv, html, pdf, docx; binary, folder or unknown
    size: int  # bytes of the source file
    offset: int  # character offset of this file's text in `context` (-1 when not included)
    chars: int  # characters of its text in `context` (0 when not included)
    status: str  # "ok", "skipped" or "error"
    reason: str | None = None  # why skipped or error

    def as_dict(self) -> dict:
        return asdict(self)

    def header(self) -> str:
        """The line that opens this file's text in `context` (its format lives here and in `parse_header`)."""
        return _HEADER.format(path=self.path, type=self.type, size=self.size)

    @staticmethod
    def parse_header(line: str) -> tuple[str, str, int] | None:
        """(path, type, size) of a header line, or None if `line` is not one."""
        match = _HEADER_RE.match(line.rstrip("\n"))
        return (match["path"], match["type"], int(match["size"])) if match else None


def split_context(context: str) -> list[tuple[str, str]]:
    """The (path, text) of each file in a context `read_corpus` built (for checks and tools).

    Splits on header lines, so a file whose own text holds a header-like line is split there too;
    use the index's offsets for exact slices."""
    matches = list(_HEADER_RE.finditer(context))
    pieces = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(context)
        text = context[match.end() + 1 : end]
        pieces.append((match["path"], text[: -len(_SEPARATOR)] if text.endswith(_SEPARATOR) else text))
    return pieces


@dataclass
class Corpus:
    """What `read_corpus` read: the `context` text input, its index, and what the reading cost."""

    context: Any  # a `str`, or a `TextFile` above settings.ASK_INLINE_CHARS
    files: list[FileEntry]
    converted: int = 0  # files converted now
    cache_hits: int = 0  # files whose text came from the cache
    seconds: float = 0.0  # wall time of read_corpus
    chars: int = field(default=0)  # characters of `context`

    def index(self) -> list[dict]:
        """The `files` input: one dict per entry, included or not."""
        return [entry.as_dict() for entry in self.files]


def read_corpus(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_bytes: int = settings.ASK_MAX_FILE_BYTES,
    cache_dir: str | os.PathLike[str] | None = None,
    respect_gitignore: bool = True,
    inline_chars: int | None = None,
) -> Corpus:
    """Read files and folders (recursively; `include`/`exclude` are gitignore-style globs on the path
    below each folder given; `.gitignore` files and `.git` folders are honoured) into a `Corpus`.

    Unreadable, unsupported, over-the-cap files and missing paths are listed in the index with the
    reason. Raises ValueError, listing why, only when no file at all could be read."""
    started = time.perf_counter()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    root = Path(cache_dir) if cache_dir is not None else settings.cache_dir() / "ingest"
    inline = settings.ASK_INLINE_CHARS if inline_chars is None else inline_chars
    planned, counts = [], {"converted": 0, "cache_hits": 0}
    for item in walk_paths(paths, include=tuple(include), exclude=tuple(exclude), gitignore=respect_gitignore):
        planned.append(_read_one(item, max_file_bytes, root, counts))
    if not any(entry.status == "ok" for entry, _ in planned):
        raise ValueError(_nothing_read(paths, [entry for entry, _ in planned]))
    files, total = _place(planned)
    texts = [text for _, text in planned]
    if total <= inline:
        context: Any = "".join(_pieces(files, texts, as_text=True))
    else:
        context = _context_file(root, files, texts, total)
    return Corpus(context, files, counts["converted"], counts["cache_hits"], time.perf_counter() - started, total)


def _read_one(item: Candidate, cap: int, root: Path, counts: dict[str, int]) -> tuple[FileEntry, Any]:
    """(entry with offset -1, cached text path or None) for one candidate."""
    def problem(status: str, reason: str, type_: str = "unknown", size: int = 0) -> tuple[FileEntry, None]:
        return FileEntry(item.shown, type_, size, -1, 0, status, reason), None

    if item.problem is not None:
        return problem(item.problem[0], item.problem[1], item.kind)
    try:
        status = os.stat(item.path)
        size = status.st_size
        if not stat.S_ISREG(status.st_mode):  # a pipe or device would block or never end
            return problem("skipped", "not a regular file (a pipe, socket or device)")
        if size > cap:
            return problem("skipped", f"over the {human_size(cap)} cap ({human_size(size)}); raise the cap "
                                      "to include it", type_by_name(item.path) or "unknown", size)
        type_ = detect_type(item.path)
        if type_ == "binary":
            return problem("skipped", "binary file (not text, and no converter for its type)", "binary", size)
        text_path, chars, hit = conversion_cache.converted(root, item.path, type_)
    except Unreadable as exc:
        return problem("error", str(exc), exc.type, size)
    except ImportError as exc:  # a converter's extra is missing: that file only
        return problem("error", str(exc), type_, size)
    except OSError as exc:
        return problem("error", f"could not read it (or write its cache entry): {exc.strerror or exc}")
    counts["cache_hits" if hit else "converted"] += 1
    return FileEntry(item.shown, type_, size, -1, chars, "ok"), text_path


def _place(planned: list[tuple[FileEntry, Any]]) -> tuple[list[FileEntry], int]:
    """The entries with their offsets in `context`, and its length in characters."""
    files, at = [], 0
    for entry, _ in planned:
        if entry.status != "ok":
            files.append(entry)
            continue
        at += len(entry.header())
        files.append(FileEntry(entry.path, entry.type, entry.size, at, entry.chars, "ok"))
        at += entry.chars + len(_SEPARATOR)
    return files, at


def _pieces(files: list[FileEntry], texts: list[Any], *, as_text: bool) -> Iterator[Any]:
    """The context's parts in order: headers, texts (in chunks) and separators, as str or UTF-8 bytes."""
    for entry, text_path in zip(files, texts):
        if entry.status != "ok":
            continue
        if as_text:  # a small corpus: each text whole (newline="": exactly as stored)
            with open(text_path, encoding="utf-8", newline="") as source:
                yield entry.header() + source.read() + _SEPARATOR
            continue
        yield entry.header().encode("utf-8")
        with open(text_path, "rb") as source:
            while chunk := source.read(_COPY_CHUNK):
                yield chunk
        yield _SEPARATOR.encode()


def _context_file(root: Path, files: list[FileEntry], texts: list[Any], total: int) -> TextFile:
    """The context as a file named by what it holds: written once (streamed), reused after."""
    key = hashlib.sha256()
    for entry, text_path in zip(files, texts):
        if entry.status == "ok":
            key.update(f"{entry.header()}{Path(text_path).name}\n".encode())
    target = root / "contexts" / f"{key.hexdigest()}.txt"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with conversion_cache.atomic_write(target) as out:
            for part in _pieces(files, texts, as_text=False):
                out.write(part)
    return TextFile(str(target), total)


def _nothing_read(paths: Sequence[Any], entries: list[FileEntry]) -> str:
    shown = "; ".join(f"{e.path}: {e.reason}" for e in entries[:10])
    more = f" (and {len(entries) - 10} more)" if len(entries) > 10 else ""
    given = ", ".join(map(str, paths)) or "(no paths given)"
    return (f"nothing could be read from {given}: " + (shown + more if entries else "no files found")
            + "; check the paths and the include/exclude patterns")
