"""Needle in a haystack (S-NIAH style): one fact hidden in filler text, among decoys.

The needle is "The special magic number for {key} is {value}." Distractor
needles use the same template with other keys, so a search for the template
alone finds several candidates: the key has to match.
"""

from __future__ import annotations

import random
import re
from typing import Any

import dspy

from dspy_rlm.lms.simulated.world import NONE, Stage, TaskPlan, split_prompt
from dspy_rlm.programs.families.base import Task, TaskFamily, check_size

WORDS = (
    "river stone market lantern orchard signal harbor ledger copper meadow archive canvas window thunder "
    "garden compass silver engine valley mirror basket anchor letter forest candle bridge winter palace "
    "shadow violin marble saddle whisper crystal tunnel feather island quarry beacon"
).split()
ADJECTIVES = "amber blue coral dusk ember frost gold iron jade lunar moss night opal pale quiet rust sage tidal".split()
ANIMALS = "falcon heron lynx otter wolf crane marten badger viper moth raven swift ibis newt stoat".split()
TEMPLATE = "The special magic number for {key} is {value}."
QUESTION = "What is the special magic number for {key} mentioned in the text? Answer with the value only."
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
_KEY_IN_QUESTION = re.compile(r"special magic number for ([\w-]+)")
# The code a model that has understood the template writes once: it answers any S-NIAH question.
FIND_MAGIC_NUMBER = '''
def find_magic_number(context, query):
    """The special magic number the text states for the key the query asks about, or 'NONE'."""
    marker = 'special magic number for '
    if marker not in query:
        return 'NONE'
    needle = marker + query.split(marker, 1)[1].split()[0] + ' is '
    start = context.find(needle)
    if start < 0:
        return 'NONE'
    value = context[start + len(needle):].split('.')[0].strip()
    return value if value.isdigit() else 'NONE'
'''


class NeedleFamily(TaskFamily):
    """S-NIAH: find the value stated for one key, with 3-10 decoy needles."""

    name = "niah"
    description = "needle in a haystack with distractor needles (constant complexity)"

    def make_task(self, size: int, seed: int) -> Task:
        check_size(size)
        rng = random.Random(seed)
        lines, total = [], 0
        while total < size:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
            lines.append(line)
            total += len(line) + 1
        n_needles = min(rng.randint(4, 11), len(lines))
        keys = rng.sample([f"{a}-{b}" for a in ADJECTIVES for b in ANIMALS], n_needles)
        values = [str(v) for v in rng.sample(range(1_000_000, 10_000_000), n_needles)]
        depth = rng.choice(DEPTHS)
        gold_line = round(depth * (len(lines) - 1))
        others = rng.sample([i for i in range(len(lines)) if i != gold_line], n_needles - 1)
        for position, key, value in zip([gold_line, *others], keys, values):
            lines[position] = TEMPLATE.format(key=key, value=value)
        return Task(
            context="\n".join(lines),
            query=QUESTION.format(key=keys[0]),
            answer=values[0],
            meta={"key": keys[0], "depth": depth, "distractors": dict(zip(keys[1:], values[1:]))},
        )

    def score(self, gold: dspy.Example, answer: Any) -> tuple[float, str]:
        numbers = re.findall(r"\d+", str(answer))
        decoys = {value: key for key, value in gold.distractors.items()}
        wrong = [n for n in numbers if n in decoys]
        if gold.answer in numbers and not wrong:
            return 1.0, f"Correct: the magic number for {gold.key} is {gold.answer}."
        if wrong:
            return 0.0, (f"Expected {gold.answer}, but the answer gives {wrong[0]}, the magic number of another key "
                         f"({decoys[wrong[0]]}). Match the key {gold.key} exactly.")
        return 0.0, f"Expected {gold.answer} for {gold.key}; the answer {str(answer)[:80]!r} does not state it."

    def world(self) -> "NeedleWorld":
        return NeedleWorld()

    def advice(self) -> str:
        return ("Several sentences share the needle's template with other keys: search for the exact key "
                "(a regex on the key) or read every chunk with llm_query_batched, and check the key.")


class NeedleWorld:
    """The simulated model's knowledge of S-NIAH: read needle sentences, match keys."""

    name = "niah"

    def plan(self, question: str) -> TaskPlan | None:
        found = _KEY_IN_QUESTION.search(question)
        if not found:
            return None
        key = found.group(1)
        ask = f"What is the special magic number for {key}? Reply with the number only, or NONE if the text does not state it."
        return TaskPlan(
            stages=(Stage(ask=ask, keywords=re.escape(key)),),
            combine="answer = pick(replies)",
            guess="next((u.rstrip('.').split(' is ')[-1] for u in units if 'magic number' in u), 'unknown')",
            function=FIND_MAGIC_NUMBER,
        )

    def answer(self, prompt: str, mistake: bool = False) -> str:
        question, text = split_prompt(prompt)
        asked = _KEY_IN_QUESTION.search(question)
        if not asked:
            return NONE
        stated = dict(re.findall(r"special magic number for ([\w-]+) is (\d+)", text))
        value = stated.get(asked.group(1), NONE)
        if mistake:
            decoys = sorted(v for k, v in stated.items() if k != asked.group(1))
            return decoys[0] if decoys else (NONE if value != NONE else str(1_000_000 + len(text) % 9_000_000))
        return value
