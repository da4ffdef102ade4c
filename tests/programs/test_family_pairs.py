"""OOLONG-Pairs: gold pair sets recomputed from the lines, the size guardrail, F1 over pairs."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from itertools import combinations

import dspy
import pytest

from dspy_rlm.programs.families import get_family
from dspy_rlm.programs.families.labels import classify

PAIRS = get_family("pairs")


def recompute(query: str, context: str) -> set[tuple[str, str]]:
    """The qualifying pairs, from the question text and the lines only."""
    rows = []
    for line in context.split("\n"):
        date, user, instance = line.split(" || ")
        rows.append((datetime.strptime(date[6:], "%b %d, %Y"), user[6:], classify(instance[10:])))
    users = sorted({user for _, user, _ in rows})
    if m := re.search(r"each have at least (\d+) instances with the label '([^']+)' or '([^']+)'", query):
        k, a, b = int(m.group(1)), m.group(2), m.group(3)
        counts = Counter(user for _, user, label in rows if label in (a, b))
        return set(combinations([u for u in users if counts[u] >= k], 2))
    if m := re.search(r"each have at least (\d+) instances with the label '([^']+)' dated after (\w+ \d+, \d+)", query):
        k, a, after = int(m.group(1)), m.group(2), datetime.strptime(m.group(3), "%b %d, %Y")
        counts = Counter(user for day, user, label in rows if label == a and day > after)
        return set(combinations([u for u in users if counts[u] >= k], 2))
    m = re.search(r"one user has at least (\d+) .*label '([^']+)' and the other has at most (\d+) .*label '([^']+)'", query)
    k, a, most, b = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
    high = Counter(user for _, user, label in rows if label == a)
    low = Counter(user for _, user, label in rows if label == b)
    return {(x, y) for x, y in combinations(users, 2)
            if (high[x] >= k and low[y] <= most) or (high[y] >= k and low[x] <= most)}


def as_pairs(answer: str) -> set[tuple[str, str]]:
    return set(re.findall(r"\((\d+), (\d+)\)", answer))


@pytest.mark.parametrize("seed", range(10))
def test_gold_pairs_match_a_recomputation_and_respect_the_guardrail(seed):
    task = PAIRS.make_task(2**14, seed)
    gold = as_pairs(task.answer)
    assert gold == recompute(task.query, task.context)
    n_users = task.meta["n_users"]
    assert 0 < len(gold) < 0.5 * n_users * (n_users - 1) / 2
    assert task.answer.split("\n") == sorted(task.answer.split("\n")) and all(a < b for a, b in gold)


def test_all_three_question_forms_occur():
    assert {PAIRS.make_task(2**13, seed).meta["kind"] for seed in range(30)} == {"both", "both_after", "one_other"}


def test_larger_contexts_have_more_users():
    assert PAIRS.make_task(2**12, 0).meta["n_users"] < PAIRS.make_task(2**17, 0).meta["n_users"]


GOLD = dspy.Example(answer="(1, 2)\n(1, 3)\n(2, 3)\n(3, 4)")


@pytest.mark.parametrize(("answer", "score"), [
    ("(1, 2)\n(1, 3)\n(2, 3)\n(3, 4)", 1.0),
    ("(4, 3) (3,2) (3 , 1) (2, 1)", 1.0),  # order inside a pair and spacing do not matter
    ("(1, 2)\n(1, 3)", 2 * 1.0 * 0.5 / 1.5),  # precision 1, recall 0.5
    ("(1, 2)\n(1, 3)\n(2, 3)\n(3, 4)\n(5, 6)\n(6, 7)\n(7, 8)\n(8, 9)", 2 * 0.5 * 1.0 / 1.5),
    ("[]", 0.0),
    ("(5, 6)", 0.0),
])
def test_f1_over_pairs_on_hand_made_answers(answer, score):
    assert PAIRS.metric(GOLD, dspy.Prediction(answer=answer)) == pytest.approx(score)


def test_feedback_reports_precision_and_recall():
    feedback = PAIRS.metric(GOLD, dspy.Prediction(answer="(1, 2)\n(9, 9)"), pred_name="generate_code").feedback
    assert "1 of the 2 pairs given are right, out of 4 expected (precision 0.50, recall 0.25)" in feedback
