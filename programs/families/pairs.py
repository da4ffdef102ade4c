"""OOLONG-Pairs style: every pair of users meeting label and date conditions (quadratic).

The lines are OOLONG's. A question asks for all pairs of user IDs where both
users (or one and the other) meet a condition on their labels, some with a
date bound. Thresholds are drawn from the data so the gold set is never empty
and never more than half of all pairs. Scored by F1 over pairs.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from itertools import combinations
from typing import Any

import dspy

from dspy_rlm.lms.simulated.world import Stage, TaskPlan
from dspy_rlm.programs.families.base import Task, TaskFamily, check_size, derive_seed
from dspy_rlm.programs.families.labels import (
    ASK_LABELS, CUES, LABELS, PARSE_SETUP, LabelledLinesWorld, Record, format_date, generate_records, make_users,
)

FORMAT = " List every such pair as '(id1, id2)' with the lower ID first, one pair per line; answer [] if there are none."
QUESTIONS = {
    "both": "In the lines above, find every pair of users who each have at least {k} instances with the label '{a}' or '{b}'.",
    "both_after": ("In the lines above, find every pair of users who each have at least {k} instances with the label "
                   "'{a}' dated after {date}."),
    "one_other": ("In the lines above, find every pair of users where one user has at least {k} instances with the label "
                  "'{a}' and the other has at most {m} instances with the label '{b}'."),
}
_LABEL = "|".join(re.escape(label) for label in LABELS)
_DATE = r"\w{3} \d\d, \d{4}"
_PARSE = {
    "both": re.compile(rf"each have at least (\d+) instances with the label '({_LABEL})' or '({_LABEL})'\."),
    "both_after": re.compile(rf"each have at least (\d+) instances with the label '({_LABEL})' dated after ({_DATE})\."),
    "one_other": re.compile(rf"one user has at least (\d+) instances with the label '({_LABEL})' and the other has "
                            rf"at most (\d+) instances with the label '({_LABEL})'"),
}
_PAIR = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def gold_pairs(records: list[Record], kind: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """The pairs (lower ID first) meeting the condition, over every user that appears in the lines."""
    users = sorted({r.user for r in records})
    if kind == "both":
        counts = Counter(r.user for r in records if r.label in (params["a"], params["b"]))
        good = [u for u in users if counts[u] >= params["k"]]
        return set(combinations(good, 2))
    if kind == "both_after":
        counts = Counter(r.user for r in records if r.label == params["a"] and r.date > params["day"])
        good = [u for u in users if counts[u] >= params["k"]]
        return set(combinations(good, 2))
    high = Counter(r.user for r in records if r.label == params["a"])
    low = Counter(r.user for r in records if r.label == params["b"])
    return {(x, y) for x, y in combinations(users, 2)
            if (high[x] >= params["k"] and low[y] <= params["m"]) or (high[y] >= params["k"] and low[x] <= params["m"])}


def parse_pairs(text: str) -> set[tuple[str, str]]:
    return {tuple(sorted((a, b))) for a, b in _PAIR.findall(text)}


class PairsFamily(TaskFamily):
    """All user pairs meeting label (and date) conditions, F1-scored."""

    name = "pairs"
    description = "OOLONG-Pairs style: user pairs meeting label and date conditions (quadratic complexity)"

    def make_task(self, size: int, seed: int) -> Task:
        check_size(size)
        rng = random.Random(seed)
        n_users = max(4, min(60, size // 2200))
        for attempt in range(200):
            if attempt % 20 == 0:  # some line sets allow few questions (tiny sizes): draw new lines now and then
                records = generate_records(size, rng, make_users(n_users, rng))
                n_active = len({r.user for r in records})
            kind = rng.choice(tuple(QUESTIONS))
            params = self._params(kind, records, random.Random(derive_seed(seed, attempt)))
            pairs = gold_pairs(records, kind, params)
            if 0 < len(pairs) < 0.5 * n_active * (n_active - 1) / 2:
                question = QUESTIONS[kind].format(**params, date=format_date(params.get("day", records[0].date)))
                answer = "\n".join(f"({a}, {b})" for a, b in sorted(pairs))
                return Task("\n".join(r.line for r in records), question + FORMAT, answer,
                            {"kind": kind, "n_pairs": len(pairs), "n_users": n_active})
        raise RuntimeError(f"could not make a pairs question for size {size}, seed {seed}")  # pragma: no cover

    def _params(self, kind: str, records: list[Record], rng: random.Random) -> dict[str, Any]:
        a, b = rng.sample(LABELS, 2)
        users = sorted({r.user for r in records})

        def quantile(counter: Counter, low: float, high: float) -> int:
            ranked = sorted(counter[u] for u in users)
            return ranked[rng.randrange(int(low * len(ranked)), max(int(low * len(ranked)) + 1, int(high * len(ranked))))]

        if kind == "both":
            return {"a": a, "b": b, "k": max(1, quantile(Counter(r.user for r in records if r.label in (a, b)), 0.34, 1))}
        if kind == "both_after":
            day = sorted(r.date for r in records)[rng.randrange(len(records) // 4, 3 * len(records) // 4 + 1)]
            counts = Counter(r.user for r in records if r.label == a and r.date > day)
            return {"a": a, "k": max(1, quantile(counts, 0.34, 1)), "day": day}
        high = Counter(r.user for r in records if r.label == a)
        low = Counter(r.user for r in records if r.label == b)
        return {"a": a, "b": b, "k": max(1, quantile(high, 0.5, 1)), "m": quantile(low, 0, 0.5)}

    def score(self, gold: dspy.Example, answer: Any) -> tuple[float, str]:
        return score_pairs(gold.answer, str(answer))

    def world(self) -> "PairsWorld":
        return PairsWorld()

    def advice(self) -> str:
        return ("Each pair depends on every line of both users: label every line with the sub-model "
                "(chunks and llm_query_batched), count per user in code, then build the pairs.")


def score_pairs(gold: str, answer: str) -> tuple[float, str]:
    """F1 between the gold pairs and the pairs found in the answer."""
    expected, found = parse_pairs(gold), parse_pairs(answer)
    hits = len(expected & found)
    if not expected and not found:
        return 1.0, "Correct: no pairs."
    precision = hits / len(found) if found else 0.0
    recall = hits / len(expected) if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return f1, (f"F1 {f1:.2f}: {hits} of the {len(found)} pairs given are right, out of {len(expected)} expected "
                f"(precision {precision:.2f}, recall {recall:.2f}).")


def _plan(kind: str, groups: tuple[str, ...]) -> TaskPlan:
    head = ("from itertools import combinations\nrows = labelled_rows()\n"
            "users = sorted({user_of(u) for u in units})\n")
    if kind == "both":
        k, a, b = groups
        test = f"counts = Counter(user for user, day, label in rows if label in ({a!r}, {b!r}))\n"
        pairs = f"good = [u for u in users if counts[u] >= {k}]\npairs = list(combinations(good, 2))\n"
        cues = f"{CUES[a]}|{CUES[b]}"
    elif kind == "both_after":
        k, a, day = groups
        test = (f"after = dt.datetime.strptime({day!r}, '%b %d, %Y').date()\n"
                f"counts = Counter(user for user, day, label in rows if label == {a!r} and day > after)\n")
        pairs = f"good = [u for u in users if counts[u] >= {k}]\npairs = list(combinations(good, 2))\n"
        cues = CUES[a]
    else:
        k, a, m, b = groups
        test = (f"high = Counter(user for user, day, label in rows if label == {a!r})\n"
                f"low = Counter(user for user, day, label in rows if label == {b!r})\n")
        pairs = (f"pairs = [(x, y) for x, y in combinations(users, 2) if (high[x] >= {k} and low[y] <= {m}) "
                 f"or (high[y] >= {k} and low[x] <= {m})]\n")
        cues = f"{CUES[a]}|{CUES[b]}"
    combine = head + test + pairs + "answer = '\\n'.join(f'({x}, {y})' for x, y in sorted(pairs)) or '[]'"
    guess = "'\\n'.join(f'({x}, {y})' for x, y in zip(sorted(set(u.split(' || ')[1][6:] for u in units))[::2], " \
            "sorted(set(u.split(' || ')[1][6:] for u in units))[1::2]))"
    return TaskPlan(stages=(Stage(ASK_LABELS, cues),), combine=combine, guess=guess, setup=PARSE_SETUP)


class PairsWorld(LabelledLinesWorld):
    """The simulated model's reading of pairs questions; the sub-model labels lines as in OOLONG."""

    name = "pairs"
    parsers = _PARSE
    make_plan = staticmethod(_plan)
