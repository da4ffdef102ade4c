"""Example program: decompose an aggregation question, run one RLM per part, combine the findings.

    program = DecomposeAggregate(max_iters=8)
    result = program(context=lines, query=question)   # OOLONG-style
    result.sub_questions, result.findings, result.answer

A comparison ("is A more common than B?") becomes two counts, a ranking
("which label is the most common?") one count per label; each count is one
RLM call over the whole context, and the last step compares the counts.
Other questions go to the RLM unchanged. With the simulated model, the
decomposition and the combination come from `simulated_respond`.
"""

from __future__ import annotations

import re
from typing import Any

import dspy

from dspy_rlm import RLM

MAX_PARTS = 6


class Decompose(dspy.Signature):
    """Split an aggregation question into simpler count questions over the same data, each complete on its own
    (keep any instructions the question starts with). Return the question itself if it needs no split."""

    question: str = dspy.InputField()
    sub_questions: list[str] = dspy.OutputField()


class Combine(dspy.Signature):
    """Answer the question from the answers to its sub-questions, in the form the question asks for."""

    question: str = dspy.InputField()
    findings: str = dspy.InputField(desc="one 'sub-question -> answer' per line")
    answer: str = dspy.OutputField()


class DecomposeAggregate(dspy.Module):
    """Decompose -> one RLM call per sub-question -> combine."""

    def __init__(self, **rlm_kwargs: Any):
        super().__init__()
        self.decompose = dspy.Predict(Decompose)
        self.rlm = RLM("context, query -> answer", **rlm_kwargs)
        self.combine = dspy.Predict(Combine)

    def forward(self, context: str, query: str) -> dspy.Prediction:
        parts = [q for q in (self.decompose(question=query).sub_questions or []) if q.strip()][:MAX_PARTS] or [query]
        results = [self.rlm(context=context, query=part) for part in parts]
        findings = "\n".join(f"{_last_sentence(part)} -> {result.answer}" for part, result in zip(parts, results))
        answer = results[0].answer if parts == [query] else self.combine(question=query, findings=findings).answer
        usage = {"sub_calls": sum(r.usage["sub_calls"] for r in results),
                 "total_tokens": sum(r.usage["total_tokens"] for r in results)}
        return dspy.Prediction(answer=answer, sub_questions=parts, findings=findings, usage=usage,
                               trajectory=[step for r in results for step in r.trajectory])


def _last_sentence(question: str) -> str:
    """The question without a shared preamble, for readable findings."""
    return question.rsplit("Answer the following: ", 1)[-1]


# ---- the simulated model's reading of this program's outer steps (used by the OOLONG world) ----

def simulated_respond(inputs: dict[str, str], outputs: list[str]) -> dict[str, Any] | None:
    """Split comparisons and rankings into counts; compare the counts."""
    from dspy_rlm.programs.families.labels import LABELS
    from dspy_rlm.programs.families.oolong import PREAMBLE, QUESTIONS, relation

    def count_question(label: str) -> str:
        return PREAMBLE + QUESTIONS["count"].format(a=label)

    question = inputs.get("question", "")
    plan_kind = _kind(question)
    if outputs == ["sub_questions"]:
        if plan_kind and plan_kind[0] == "compare":
            return {"sub_questions": [count_question(plan_kind[1]), count_question(plan_kind[2])]}
        if plan_kind and plan_kind[0] in ("most", "least"):
            return {"sub_questions": [count_question(label) for label in LABELS]}
        return {"sub_questions": [question]}
    if outputs == ["answer"] and "findings" in inputs:
        counts = {label: int(n) for label, n in re.findall(r"label '([^']+)'.*? -> \D*?(\d+)", inputs["findings"])}
        if plan_kind and plan_kind[0] == "compare" and {plan_kind[1], plan_kind[2]} <= set(counts):
            a, b = plan_kind[1], plan_kind[2]
            return {"answer": f"{a} is {relation(counts[a], counts[b])} {b}"}
        if plan_kind and plan_kind[0] in ("most", "least") and counts:
            return {"answer": (max if plan_kind[0] == "most" else min)(counts, key=counts.get)}
        return {"answer": inputs["findings"].rsplit("-> ", 1)[-1]}
    return None


def _kind(question: str) -> tuple[str, ...] | None:
    found = re.search(r"Is label '([^']+)' more common, less common, or the same frequency as label '([^']+)'", question)
    if found:
        return ("compare", *found.groups())
    found = re.search(r"Which label is the (most|least) common", question)
    return (found.group(1),) if found else None
