"""How a long text is cut before it enters a prompt or the trajectory, with a marker a reader can count.

Multi-line texts are cut in the middle by the sandbox's `truncate_middle`; `recut`
cuts a text that was already cut (the trajectory keeps each text up to a setting)
so that its marker still counts from the full length. One-line fields (a name, a
type) are cut by `cut_name`, which keeps the head and says how much is missing.
"""

from __future__ import annotations

import re

from dspy_rlm.sandbox import truncate_middle

NAME_CHARS = 80
"""Characters kept of a one-line name (a created variable, a type, a code fence's language)."""
NAME_CUT = "{head}...({cut:,} more characters)"  # one line, and no ", ", so a list of names stays a list
NUMBER = r"\d[\d,]*"
# The sandbox owns the middle-cut marker; learn its shape from `truncate_middle` itself
# (a 7-character text cut to nothing is the bare marker for 7) rather than copy it.
CUT_PREFIX, CUT_SUFFIX = truncate_middle("x" * 7, 0).split("7")
CUT = re.compile(re.escape(CUT_PREFIX) + f"(?P<cut>{NUMBER})" + re.escape(CUT_SUFFIX))


def cut_name(name: str) -> str:
    """`name` as a one-line field shows it: whole, or its first `NAME_CHARS` characters and a marker."""
    if len(name) <= NAME_CHARS:
        return name
    return NAME_CUT.format(head=name[:NAME_CHARS], cut=len(name) - NAME_CHARS)


def recut(text: str, limit: int, full: int) -> str:
    """`text` cut to `limit` like `truncate_middle`, its marker counting from `full`, the length the
    text had before an earlier cut, so a reader is told how much is really missing."""
    shown = truncate_middle(text, limit)
    if full == len(text) or len(text) <= limit:
        return shown
    head = truncate_middle("x" * (limit + 1), limit).index(CUT_PREFIX)  # the sandbox's head/tail split
    marker = len(shown) - limit
    return shown[:head] + CUT_PREFIX + f"{full - limit:,}" + CUT_SUFFIX + shown[head + marker:]
