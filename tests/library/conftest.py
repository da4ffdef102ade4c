"""Builders the library tests share: library files on disk and a scripted word-counting model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dspy_rlm import ScriptedLM
from dspy_rlm.library import parse_index

COUNT_WORDS = '''
def count_words(text):
    """The number of whitespace-separated words in text."""
    return len(text.split())
'''


def write_files(folder: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))
    return folder


@pytest.fixture
def library_folder(tmp_path: Path) -> Path:
    """A hand-written library: one documented function, no header, no tests."""
    return write_files(tmp_path / "lib", {"count_words.py": COUNT_WORDS})


def _code(text: str) -> dict[str, str]:
    return {"reasoning": "next", "code": f"```python\n{textwrap.dedent(text).strip()}\n```"}


# The first run defines four functions and answers with count_words:
#   count_words  (right; reused later)     count_fast (wrong, and preferred later: lowers the score)
#   shout        (a one-off: never called)  near_total (reads the run's variable `words`: not self-contained)
FIRST_RUN = '''
import math
words = context.split()
def count_words(text):
    """The number of whitespace-separated words in text."""
    return len(text.split())
def count_fast(text):
    """The number of words, estimated from the length (fast)."""
    return max(1, math.ceil(len(text) / 6))
def shout(text):
    """The text in capitals."""
    return text.upper()
def near_total():
    """How many words the run saw."""
    return len(words)
FINAL(str(count_words(context)))
'''


def word_counter(request) -> dict[str, str]:
    """A root model that reuses what the library offers (count_fast first), else writes FIRST_RUN."""
    listed = parse_index(request.field("variables_info") or "")
    if "count_fast" in listed:
        return _code("FINAL(str(count_fast(context)))")
    if "count_words" in listed:
        return _code("FINAL(str(count_words(context)))")
    return _code(FIRST_RUN)


@pytest.fixture
def counting_lm() -> ScriptedLM:
    return ScriptedLM(word_counter)
