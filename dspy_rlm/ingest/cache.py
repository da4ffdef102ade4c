"""Converted texts cached by the sha256 of the source bytes (and the converter's type and version).

An entry is two files under `root/<first two hex digits>/`: `<key>.txt` (the text, UTF-8) and
`<key>.json` (its length in characters and bytes). Both are written to a temporary name and
renamed, the metadata last, so a reader sees a whole entry or none; an entry whose text does
not match its metadata (a damaged or truncated file) is converted again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dspy_rlm.fileio import replacing
from dspy_rlm.ingest.convert import CONVERTER_VERSION, convert

_HASH_CHUNK = 1 << 20


def content_hash(path: str) -> str:
    """The sha256 of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def converted(root: Path, path: str, type_: str) -> tuple[str, int, bool]:
    """(path of the cached text, its characters, whether it was already cached) for `path`."""
    key = f"{content_hash(path)}-{type_}-v{CONVERTER_VERSION}"
    text_path, meta_path = root / key[:2] / f"{key}.txt", root / key[:2] / f"{key}.json"
    chars = _valid(text_path, meta_path)
    if chars is not None:
        return str(text_path), chars, True
    text_path.parent.mkdir(parents=True, exist_ok=True)
    chars = 0
    with atomic_write(text_path) as out:
        for chunk in convert(path, type_):  # raises Unreadable; the temporary file is removed
            chars += len(chunk)
            out.write(chunk.encode("utf-8", errors="replace"))
    meta = {"chars": chars, "bytes": text_path.stat().st_size, "source": os.path.basename(path)}
    with atomic_write(meta_path) as out:
        out.write(json.dumps(meta).encode())
    return str(text_path), chars, False


def _valid(text_path: Path, meta_path: Path) -> int | None:
    """The entry's characters if it is whole, else None."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if isinstance(meta.get("chars"), int) and text_path.stat().st_size == meta["bytes"]:
            return meta["chars"]
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        pass
    return None


@contextlib.contextmanager
def atomic_write(target: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes `target` only when the block ends without an error."""
    with replacing(target) as temporary, open(temporary, "wb") as out:
        yield out
