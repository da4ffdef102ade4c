"""Example program: decompose an aggregation question, run one RLM per part, combine the findings.

    program = DecomposeAggregate(max_iters=8)
    result = program(context=lines, query=question)   # OOLONG-style
    result.sub_questions, result.findings, result.answer

A comparison ("is A more common than B?") becomes two counts, a ranking
("which label is the most common?") one count per label; each count is one
RLM call over the whole context, and the last step compares the counts.
Other questions go to the RLM unchanged. The program knows nothing of the
simulated model: the OOLONG family's world answers its outer steps
(`dspy_rlm.programs.families.oolong.OolongWorld.respond`).
"""

from __future__ import annotations

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

