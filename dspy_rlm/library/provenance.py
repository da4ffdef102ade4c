"""Where a library function came from: the header comment block of its file.

The header is written and read here only (a record owns its format):

    # dspy-rlm library: harvested
    # program: niah
    # run: train[3]
    # date: 2026-12-02
    # score: 1.0

Keys come in the fixed order of `Provenance`'s fields and empty ones are left out,
so a regenerated file is byte-identical. Hand-written files have no header; they
are accepted and read as `Provenance()` (all fields empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from dspy_rlm.errors import LibraryError

MARKER = "# dspy-rlm library: harvested"
_LINE = re.compile(r"^# (\w+): (.*)$")


@dataclass(frozen=True)
class Provenance:
    """The program, run (or trace) id, date and score a function was harvested from; all optional."""

    program: str = ""
    run: str = ""
    trace: str = ""
    date: str = ""
    score: str = ""
    calls: str = ""  # how often validation runs called it

    @property
    def harvested(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def header(self) -> str:
        """The comment block to put at the top of the file ("" for a hand-written function)."""
        if not self.harvested:
            return ""
        lines = [MARKER] + [f"# {f.name}: {_one_line(getattr(self, f.name))}" for f in fields(self)
                            if getattr(self, f.name)]
        return "\n".join(lines) + "\n\n"  # a blank line before the code


def parse_header(text: str, where: str) -> tuple[Provenance, str]:
    """The provenance in `text`'s header and the code after it (the whole text when there is no header)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\n") != MARKER:
        return Provenance(), text
    known = {f.name for f in fields(Provenance)}
    values: dict[str, str] = {}
    end = 1
    for end, line in enumerate(lines[1:], start=1):
        found = _LINE.match(line.rstrip("\n"))
        if found is None:
            break
        key, value = found.groups()
        if key not in known:
            raise LibraryError(f"{where}: unknown header key {key!r} (known: {', '.join(sorted(known))}); "
                               "fix or delete that line")
        values[key] = value
    else:
        end = len(lines)
    return Provenance(**values), "".join(lines[end:])


def _one_line(value: str) -> str:
    return " ".join(str(value).split())
