"""OOLONG-style aggregation: template banks, gold answers recomputed from the lines, the paper's scorer."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import datetime

import dspy
import pytest

from dspy_rlm.programs.families import get_family
from dspy_rlm.programs.families.labels import CUES, FILLERS, LABELS, TEMPLATES, classify, make_instance, template_labels

OOLONG = get_family("oolong")


def test_every_template_maps_to_exactly_one_label():
    rng = random.Random(0)
    for label in LABELS:
        for _ in range(300):
            text = make_instance(label, rng)
            assert template_labels(text) == {label}, text
            assert classify(text) == label


def test_no_single_keyword_regex_finds_a_label():
    """The cue regexes a model might try miss some of a label's templates and catch other labels'."""
    filled = {label: [re.sub(r"\{(\w+)\}", lambda m: FILLERS[m.group(1)][0], t) for t in TEMPLATES[label]] for label in LABELS}
    for label, cue in CUES.items():
        own = [text for text in filled[label] if re.search(cue, text, re.IGNORECASE)]
        others = [text for other in LABELS if other != label for text in filled[other] if re.search(cue, text, re.IGNORECASE)]
        assert 0 < len(own) < len(filled[label]), label
        assert others, label


def parse(context: str) -> list[tuple[datetime, str, str]]:
    rows = []
    for line in context.split("\n"):
        date, user, instance = line.split(" || ")
        rows.append((datetime.strptime(date[6:], "%b %d, %Y"), user[6:], classify(instance[10:])))
    return rows


def recompute(query: str, rows: list[tuple[datetime, str, str]]) -> str:
    """The answer to a question, from the question text and the lines only."""
    question = query.rsplit("Answer the following: ", 1)[1]
    labels = re.findall(r"label '([^']+)'", question)
    if m := re.match(r"Among instances associated with user IDs ([\d, ]+),", question):
        users = set(m.group(1).split(", "))
        rows = [r for r in rows if r[1] in users]
    if m := re.match(r"Among instances dated after (\w+ \d+, \d+),", question):
        after = datetime.strptime(m.group(1), "%b %d, %Y")
        rows = [r for r in rows if r[0] > after]
    counts = Counter(label for _, _, label in rows)
    if question.startswith("Is label"):
        a, b = labels[:2]
        phrase = "more common than" if counts[a] > counts[b] else "less common than" if counts[a] < counts[b] else "same frequency as"
        return f"{a} is {phrase} {b}"
    if "most common" in question or "least common" in question:
        ranked = sorted(LABELS, key=lambda label: counts[label], reverse="most" in question)
        return ranked[0]
    return str(counts[labels[0]])


@pytest.mark.parametrize("seed", range(12))
def test_gold_answers_match_a_recomputation_from_the_lines(seed):
    task = OOLONG.make_task(2**14, seed)
    assert recompute(task.query, parse(task.context)) == task.answer


def test_all_question_kinds_occur():
    kinds = {OOLONG.make_task(2**12, seed).meta["kind"] for seed in range(40)}
    assert kinds == {"count", "compare", "most", "least", "users", "after"}


def test_lines_have_the_oolong_format_and_users_are_skewed():
    task = OOLONG.make_task(2**16, 4)
    lines = task.context.split("\n")
    assert all(re.fullmatch(r"Date: \w{3} \d\d, 20(22|23|24) \|\| User: \d{5} \|\| Instance: .+", line) for line in lines)
    activity = Counter(line.split(" || ")[1] for line in lines).most_common()
    assert activity[0][1] > 5 * activity[-1][1]


@pytest.mark.parametrize(("kind", "gold", "answer", "score"), [
    ("count", "10", "Answer: 10", 1.0),
    ("count", "10", "12", 0.75 ** 2),
    ("count", "10", "Answer: about 7 or so", 0.75 ** 3),
    ("count", "10", "I could not count them", 0.0),
    ("compare", "location is more common than entity", "Answer: location is more common than entity", 1.0),
    ("compare", "location is more common than entity", "location is less common than entity", 0.0),
    ("compare", "location is same frequency as entity", "Answer: location is same frequency as entity.", 1.0),
    ("most", "location", "Answer: 'location'", 1.0),
    ("most", "location", "Location", 1.0),
    ("least", "abbreviation", "entity", 0.0),
])
def test_paper_scorer_on_hand_made_answers(kind, gold, answer, score):
    example = dspy.Example(answer=gold, kind=kind)
    assert OOLONG.metric(example, dspy.Prediction(answer=answer)) == pytest.approx(score)


def test_numeric_feedback_states_the_error():
    example = dspy.Example(answer="10", kind="count")
    feedback = OOLONG.metric(example, dspy.Prediction(answer="13"), pred_name="generate_code").feedback
    assert "Expected 10, got 13 (off by 3" in feedback
