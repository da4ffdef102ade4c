"""Example program: rewrite the question, run an RLM over the documents, answer with citations.

    program = ResearchQA(max_iters=8)
    result = program(context=documents, query=riddle)
    result.cited_answer    # "Ada Venn [doc 12] [doc 40]"

Works on the multi-hop family (`context` is a list of documents). The
program knows nothing of the simulated model: the multi-hop family's world
answers its outer steps (`dspy_rlm.programs.families.multihop.MultiHopWorld.respond`).
"""

from __future__ import annotations

import re
from typing import Any

import dspy

from dspy_rlm import RLM

MAX_PASSAGES = 6


class RewriteQuestion(dspy.Signature):
    """Restate the question as one direct question that names its starting entity and any year it mentions."""

    question: str = dspy.InputField()
    search_question: str = dspy.OutputField(desc="the question, restated for a search over documents")


class CiteAnswer(dspy.Signature):
    """Write the final answer followed by a citation [doc N] for each passage that supports it."""

    question: str = dspy.InputField()
    answer: str = dspy.InputField()
    passages: str = dspy.InputField(desc="passages, each starting with its [doc N] tag")
    cited_answer: str = dspy.OutputField(desc="the answer, then its citations")


class ResearchQA(dspy.Module):
    """Rewrite -> RLM over `context: list[str]` (answer and evidence document ids) -> cited answer."""

    def __init__(self, **rlm_kwargs: Any):
        super().__init__()
        self.rewrite = dspy.Predict(RewriteQuestion)
        self.rlm = RLM("context: list[str], query -> answer, evidence: list[int]", **rlm_kwargs)
        self.cite = dspy.Predict(CiteAnswer)

    def forward(self, context: list[str], query: str) -> dspy.Prediction:
        question = self.rewrite(question=query).search_question or query
        found = self.rlm(context=context, query=question)
        evidence = [i for i in (found.evidence or []) if isinstance(i, int) and 0 <= i < len(context)][:MAX_PASSAGES]
        passages = "\n\n".join(f"[doc {i}] {context[i][:400]}" for i in evidence) or "(no passages)"
        cited = self.cite(question=query, answer=str(found.answer), passages=passages).cited_answer
        return dspy.Prediction(answer=found.answer, cited_answer=cited, evidence=evidence, search_question=question,
                               trajectory=found.trajectory, usage=found.usage)


def citation_recall(gold: dspy.Example, pred: dspy.Prediction) -> float:
    """The share of the gold evidence documents that the cited answer cites."""
    cited = {int(n) for n in re.findall(r"\[doc (\d+)\]", getattr(pred, "cited_answer", "") or "")}
    expected = set(gold.evidence)
    return len(cited & expected) / len(expected) if expected else 1.0

