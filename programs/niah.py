"""Needle in a haystack (S-NIAH style): one fact hidden in a large filler text.

Distractor needles use the same sentence template with other keys, so a
search for the template alone finds several candidates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

WORDS = (
    "river stone market lantern orchard signal harbor ledger copper meadow archive canvas window thunder "
    "garden compass silver engine valley mirror basket anchor letter forest candle bridge winter palace "
    "shadow violin marble saddle whisper crystal tunnel feather island meadow quarry beacon"
).split()
KEYS = ("amber-falcon", "blue-heron", "coral-lynx", "dusk-otter", "ember-wolf", "frost-crane", "gold-marten",
        "iron-badger", "jade-viper", "lunar-moth", "moss-raven", "night-swift")
TEMPLATE = "The special magic number for {key} is {value}."


@dataclass(frozen=True)
class NeedleTask:
    context: str
    query: str
    answer: str
    key: str


def make_needle_task(size_chars: int, seed: int = 0, distractors: int = 5) -> NeedleTask:
    """A haystack of about `size_chars` characters with one needle and `distractors` decoys."""
    if size_chars < 1024:
        raise ValueError(f"size_chars must be at least 1024, got {size_chars}")
    rng = random.Random(seed)
    keys = rng.sample(KEYS, distractors + 1)
    values = rng.sample(range(1_000_000, 9_999_999), distractors + 1)
    lines: list[str] = []
    total = 0
    while total < size_chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
        lines.append(line)
        total += len(line) + 1
    needles = [TEMPLATE.format(key=k, value=v) for k, v in zip(keys, values)]
    for needle, position in zip(needles, rng.sample(range(len(lines)), len(needles))):
        lines[position] = needle
    return NeedleTask(
        context="\n".join(lines),
        query=f"What is the special magic number for {keys[0]}?",
        answer=str(values[0]),
        key=keys[0],
    )
