"""The read-only input mount: each input is written once to a folder the guest reads.

A `str` becomes a text file; anything else JSON (see `jsonsafe.encode_input`),
which the guest restores to Python objects. `input_values` lists the conversions
on the way (sets and tuples to lists, dates to ISO strings, dict keys to str, ...)
and refuses, naming where, what JSON cannot carry.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dspy_rlm.errors import InputsNotLoaded
from dspy_rlm.sandbox.jsonsafe import encode_input

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


def remove_files(folder: str, specs: list[tuple[str, str, str]]) -> None:
    for _, filename, _ in specs:
        (Path(folder) / filename).unlink(missing_ok=True)
