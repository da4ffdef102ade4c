"""OOLONG-style aggregation over labelled lines (linear complexity).

Questions count, compare and rank the hidden labels of all lines, or of the
lines of some users or after a date. Numeric answers score 0.75^|error|
(the paper's scorer); comparisons and labels score by exact match.

`OolongWorld` is the simulated model's knowledge of the family, including the
outer steps of the example program `dspy_rlm.programs.aggregate` (which knows
nothing of the simulated model).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

import dspy

from dspy_rlm.lms.simulated.world import Stage, TaskPlan
from dspy_rlm.programs.families.base import Task, TaskFamily, check_size, derive_seed
from dspy_rlm.programs.families.labels import (
    ASK_LABELS, CUES, LABELS, LabelledLinesWorld, PARSE_SETUP, format_date, generate_records, make_users,
)

PREAMBLE = ("The following lines contain general-knowledge questions, one per line. Each question can be described "
            "as one of 6 categories: " + ", ".join(f"'{label}'" for label in LABELS) + ". The category of each line "
            "is not explicitly labeled. Do not try to guess, estimate, or approximate the result. Answer the following: ")
QUESTIONS = {
    "count": "How many data points should be classified as label '{a}'? Give your final answer in the form 'Answer: number'.",
    "compare": ("Is label '{a}' more common, less common, or the same frequency as label '{b}'? Give your final answer "
                "in the form 'Answer: {a} is [X] {b}', where [X] is 'more common than', 'less common than', or "
                "'same frequency as'."),
    "most": "Which label is the most common? Give your final answer in the form 'Answer: label'.",
    "least": "Which label is the least common? Give your final answer in the form 'Answer: label'.",
    "users": ("Among instances associated with user IDs {users}, how many data points should be classified as label "
              "'{a}'? Give your final answer in the form 'Answer: number'."),
    "after": ("Among instances dated after {date}, how many data points should be classified as label '{a}'? "
              "Give your final answer in the form 'Answer: number'."),
}
RELATIONS = ("more common than", "less common than", "same frequency as")
_LABEL = "|".join(re.escape(label) for label in LABELS)
_PARSE = {
    "count": re.compile(rf"^How many data points should be classified as label '({_LABEL})'"),
    "compare": re.compile(rf"^Is label '({_LABEL})' more common, less common, or the same frequency as label '({_LABEL})'"),
    "most": re.compile(r"^Which label is the most common"),
    "least": re.compile(r"^Which label is the least common"),
    "users": re.compile(rf"^Among instances associated with user IDs ([\d, ]+), how many .*label '({_LABEL})'"),
    "after": re.compile(rf"^Among instances dated after (\w{{3}} \d\d, \d{{4}}), how many .*label '({_LABEL})'"),
}


def relation(a: int, b: int) -> str:
    return RELATIONS[0] if a > b else RELATIONS[1] if a < b else RELATIONS[2]


class OolongFamily(TaskFamily):
    """Aggregate hidden labels over `Date || User || Instance` lines."""

    name = "oolong"
    description = "OOLONG-style aggregation over labelled lines (linear complexity)"

    def make_task(self, size: int, seed: int) -> Task:
        check_size(size)
        rng = random.Random(seed)
        records = generate_records(size, rng, make_users(rng.randint(50, 500), rng))
        for attempt in range(100):
            kind = rng.choice(tuple(QUESTIONS))
            task = self._question(kind, records, random.Random(derive_seed(seed, attempt)))
            if task is not None:
                question, answer, meta = task
                context = "\n".join(record.line for record in records)
                return Task(context, PREAMBLE + question, answer, {"kind": kind, **meta})
        raise RuntimeError(f"could not make an OOLONG question for seed {seed}")  # pragma: no cover

    def _question(self, kind: str, records: list, rng: random.Random) -> tuple[str, str, dict] | None:
        a, b = rng.sample(LABELS, 2)
        counts = Counter(record.label for record in records)
        if kind == "count":
            return QUESTIONS[kind].format(a=a), str(counts[a]), {"label": a}
        if kind == "compare":
            found = relation(counts[a], counts[b])
            return QUESTIONS[kind].format(a=a, b=b), f"{a} is {found} {b}", {"relation": found}
        if kind in ("most", "least"):
            ranked = sorted(LABELS, key=lambda label: counts[label], reverse=kind == "most")
            if counts[ranked[0]] == counts[ranked[1]]:
                return None  # a tie has no single answer
            return QUESTIONS[kind], ranked[0], {}
        if kind == "users":
            users = sorted(rng.sample(sorted({r.user for r in records}), min(5, len({r.user for r in records}))))
            gold = sum(r.label == a and r.user in users for r in records)
            return QUESTIONS[kind].format(users=", ".join(users), a=a), str(gold), {"label": a, "users": users}
        day = sorted(r.date for r in records)[len(records) // 2]
        gold = sum(r.label == a and r.date > day for r in records)
        return QUESTIONS[kind].format(date=format_date(day), a=a), str(gold), {"label": a, "after": format_date(day)}

    def score(self, gold: dspy.Example, answer: Any) -> tuple[float, str]:
        return score_oolong(gold.answer, gold.kind, str(answer))

    def world(self) -> "OolongWorld":
        return OolongWorld()

    def advice(self) -> str:
        return ("Labels are hidden and paraphrased, so surface cues miscount them: split the context into chunks, "
                "label every line with llm_query_batched, and count in code.")


def score_oolong(gold: str, kind: str, answer: str) -> tuple[float, str]:
    """The paper's scorer: 0.75^|error| for numbers, the relation phrase for comparisons, exact labels."""
    text = answer.rsplit(":", 1)[-1].strip().strip(".'\" ").lower()
    if kind in ("count", "users", "after"):
        numbers = re.findall(r"-?\d+", text)
        if not numbers:
            return 0.0, f"Expected the number {gold}; the answer {answer[:80]!r} has none."
        error = abs(int(numbers[-1]) - int(gold))
        return 0.75 ** error, f"Expected {gold}, got {numbers[-1]} (off by {error}; the score is 0.75^error)."
    if kind == "compare":
        found = [phrase for phrase in RELATIONS if phrase in text]
        wanted = next(phrase for phrase in RELATIONS if phrase in gold)
        if found and max(found, key=text.rfind) == wanted:
            return 1.0, f"Correct: {gold}."
        return 0.0, f"Expected '{gold}', got {answer[:80]!r}."
    if text.strip("'\" ") == gold:
        return 1.0, f"Correct: {gold}."
    return 0.0, f"Expected the label '{gold}', got {answer[:80]!r}."


def _plan(kind: str, groups: tuple[str, ...]) -> TaskPlan:
    count_code = "labels = [row[2] for row in labelled_rows()]\ncounts = Counter(labels)\n"
    unit_filter = ""
    if kind in ("count", "users", "after"):
        label = groups[-1]
        combine = count_code + f"answer = str(counts[{label!r}])"
        cues = CUES[label]
        if kind == "users":
            unit_filter = f"user_of(u) in {set(u.strip() for u in groups[0].split(','))!r}"
        if kind == "after":
            unit_filter = f"date_of(u) > dt.datetime.strptime({groups[0]!r}, '%b %d, %Y').date()"
        guess = "str(len(units) // 6)"
    elif kind == "compare":
        a, b = groups
        combine = count_code + (f"answer = {a!r} + ' is ' + ('more common than' if counts[{a!r}] > counts[{b!r}] else "
                                f"'less common than' if counts[{a!r}] < counts[{b!r}] else 'same frequency as') + ' ' + {b!r}")
        cues = f"{CUES[a]}|{CUES[b]}"
        guess = f"{a + ' is more common than ' + b!r}"
    else:
        choose = "max" if kind == "most" else "min"
        combine = count_code + f"answer = {choose}(LABELS, key=lambda label: counts[label])"
        cues = "|".join(CUES.values())
        guess = repr("entity" if kind == "most" else "abbreviation")
    return TaskPlan(stages=(Stage(ASK_LABELS, cues),), combine=combine, guess=guess, unit_filter=unit_filter,
                    setup=PARSE_SETUP)


class OolongWorld(LabelledLinesWorld):
    """The simulated model's knowledge: how to read OOLONG questions, and every instance's label."""

    name = "oolong"
    preamble = PREAMBLE
    parsers = _PARSE
    make_plan = staticmethod(_plan)

    def respond(self, inputs: dict[str, str], outputs: list[str]) -> dict[str, Any] | None:
        """Outer steps of `dspy_rlm.programs.aggregate.DecomposeAggregate`: split a comparison or a ranking
        into counts (`sub_questions`), and answer from the counts (`answer` given `findings`)."""
        question = inputs.get("question", "")
        if outputs == ["sub_questions"]:
            return {"sub_questions": _split(question)}
        if outputs == ["answer"] and "findings" in inputs:
            return {"answer": _combine(question, inputs["findings"])}
        return None


# The simulated model reads the whole question (preamble included), so these search, not match at the start.
_OUTER_COMPARE = re.compile(r"Is label '([^']+)' more common, less common, or the same frequency as label '([^']+)'")
_OUTER_RANK = re.compile(r"Which label is the (most|least) common")
_FINDING = re.compile(r"label '([^']+)'.*? -> \D*?(\d+)")  # "...label 'x'... -> Answer: 12"


def _outer_kind(question: str) -> tuple[str, ...] | None:
    """("compare", a, b), ("most",) or ("least",): the questions the decomposition splits; None for others."""
    found = _OUTER_COMPARE.search(question)
    if found:
        return ("compare", *found.groups())
    found = _OUTER_RANK.search(question)
    return (found.group(1),) if found else None


def _count_question(label: str) -> str:
    return PREAMBLE + QUESTIONS["count"].format(a=label)


def _split(question: str) -> list[str]:
    kind = _outer_kind(question)
    if kind and kind[0] == "compare":
        return [_count_question(kind[1]), _count_question(kind[2])]
    if kind and kind[0] in ("most", "least"):
        return [_count_question(label) for label in LABELS]
    return [question]


def _combine(question: str, findings: str) -> str:
    kind = _outer_kind(question)
    counts = {label: int(n) for label, n in _FINDING.findall(findings)}
    if kind and kind[0] == "compare" and {kind[1], kind[2]} <= set(counts):
        a, b = kind[1], kind[2]
        return f"{a} is {relation(counts[a], counts[b])} {b}"
    if kind and kind[0] in ("most", "least") and counts:
        return (max if kind[0] == "most" else min)(counts, key=counts.get)
    return findings.rsplit("-> ", 1)[-1]
