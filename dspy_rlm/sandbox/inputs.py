"""The read-only input mount: each input is written once to a folder the guest reads.

A `str` becomes a text file; anything else JSON (see `jsonsafe.encode_input`),
which the guest restores to Python objects. `input_values` lists the conversions
on the way (sets and tuples to lists, dates to ISO strings, dict keys to str, ...)
and refuses, naming where, what JSON cannot carry.
"""

from __future__ import annotations

import keyword
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dspy_rlm.errors import InputsNotLoaded
from dspy_rlm.sandbox.jsonsafe import encode_input

@dataclass(frozen=True)
class TextFile:
    """A text input held in a UTF-8 file: mounted (hardlinked, else copied) and loaded in the guest
    as a `str`, never read into host memory. `chars` is its length in characters (what the model is told).

    The file must not change while a sandbox uses it: a hardlink shares its bytes."""

    path: str
    chars: int

    def __post_init__(self) -> None:
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"TextFile {self.path!r} does not exist; write the text there first")
        object.__setattr__(self, "path", os.fspath(self.path))

    def __len__(self) -> int:
        return self.chars

    def head(self, chars: int) -> str:
        """The first `chars` characters (for previews), read without loading the rest."""
        with open(self.path, encoding="utf-8", errors="replace", newline="") as file:
            return file.read(chars)

    def tail(self, chars: int) -> str:
        """The last `chars` characters, read from the end (UTF-8 takes at most 4 bytes a character)."""
        if chars <= 0:
            return ""
        with open(self.path, "rb") as file:
            file.seek(max(0, os.fstat(file.fileno()).st_size - 4 * chars - 4))
            return file.read().decode("utf-8", errors="replace")[-chars:]


# Names the guest's own machinery uses.
RESERVED = frozenset({"invoke", "list_callbacks", "_rlm_submit"})


def is_identifier(name: Any) -> bool:
    """Whether `name` can be bound as a Python variable (an identifier, not a keyword)."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def check_names(inputs: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]) -> None:
    """Refuse names the guest cannot bind, or that clash with its own machinery, with the fix."""
    for what, names in (("input", inputs), ("function", functions)):
        for name in names:
            if not is_identifier(name):
                raise InputsNotLoaded(
                    f"{what} name {name!r} is not a valid Python identifier; rename it (e.g. 'context')"
                )
            if name in RESERVED or name.startswith("__"):
                raise InputsNotLoaded(f"{what} name {name!r} is reserved by the sandbox; choose another name")
    for name, fn in functions.items():
        if not callable(fn):
            raise TypeError(f"function {name!r} is not callable (got {type(fn).__name__})")
    both = sorted(set(inputs) & set(functions))
    if both:
        raise InputsNotLoaded(f"{', '.join(both)} given both as an input and as a function; rename one of them")


def write_inputs(folder: Path, inputs: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str, str]]:
    """Write each input to `folder`; return (name, file name, kind) for the guest."""
    specs, used = [], set()
    for name, value in inputs.items():
        # Names differing only in case would share a file on macOS/Windows.
        base = name if name.casefold() not in used else f"{name}.{len(specs)}"
        used.add(base.casefold())
        if isinstance(value, str):
            kind, filename = "text", f"{prefix}{base}.txt"
            _write_text(folder / filename, value)
        elif isinstance(value, TextFile):
            kind, filename = "text", f"{prefix}{base}.txt"
            _link_or_copy(value.path, folder / filename)
        else:
            kind, data = encode_input(name, value)
            filename = f"{prefix}{base}.json"
            (folder / filename).write_bytes(data)
        specs.append((name, filename, kind))
    return specs


def _write_text(path: Path, text: str, chunk_chars: int = 1 << 20) -> None:
    """Write text in chunks: encoding a 100 MB string at once would double its host memory."""
    with open(path, "wb") as file:
        for start in range(0, len(text), chunk_chars):
            file.write(text[start : start + chunk_chars].encode("utf-8", errors="surrogatepass"))


def _link_or_copy(source: str, target: Path) -> None:
    """Mount a file without reading it into memory: a hardlink when both are on one filesystem."""
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed: a streamed copy
        shutil.copyfile(source, target)


def remove_files(folder: str, specs: list[tuple[str, str, str]]) -> None:
    for _, filename, _ in specs:
        (Path(folder) / filename).unlink(missing_ok=True)
