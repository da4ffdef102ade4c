"""The example programs compose an RLM inside a larger DSPy program and run end to end (simulated model)."""

from __future__ import annotations

import dspy

from dspy_rlm import SimulatedLM
from dspy_rlm.programs.aggregate import DecomposeAggregate
from dspy_rlm.programs.families import get_family
from dspy_rlm.programs.research import ResearchQA, citation_recall


def test_research_rewrites_runs_the_rlm_over_documents_and_cites_the_evidence():
    family = get_family("multihop")
    task = family.make_task(2**14, 2)
    lm = SimulatedLM(family.world(), seed=2, strategy="regex", error_rate=0.0)
    program = ResearchQA(sub_lm=lm, max_iters=8)
    assert [name for name, _ in program.named_predictors()] == [
        "rewrite", "rlm.generate_code", "rlm.sub_query", "rlm.extract", "cite"]
    with dspy.context(lm=lm):
        result = program(context=task.context, query=task.query)
    assert family.metric(task.example(), result) == 1.0
    assert result.evidence == task.meta["evidence"]
    assert citation_recall(task.example(), result) == 1.0
    assert result.cited_answer.startswith(task.answer + " [doc ")


def oolong_task(kind: str, size: int = 2**14):
    family = get_family("oolong")
    return family, next(t for seed in range(100) if (t := family.make_task(size, seed)).meta["kind"] == kind)


def test_aggregate_splits_a_comparison_into_two_counts_and_compares_them():
    family, task = oolong_task("compare")
    lm = SimulatedLM(family.world(), strategy="batched", error_rate=0.0)
    with dspy.context(lm=lm):
        result = DecomposeAggregate(sub_lm=lm, max_iters=8)(context=task.context, query=task.query)
    assert len(result.sub_questions) == 2 and all("How many data points" in q for q in result.sub_questions)
    assert family.metric(task.example(), result) == 1.0
    assert result.findings.count(" -> ") == 2


def test_aggregate_ranks_labels_with_one_count_each():
    family, task = oolong_task("most")
    lm = SimulatedLM(family.world(), strategy="batched", error_rate=0.0)
    with dspy.context(lm=lm):
        result = DecomposeAggregate(sub_lm=lm, max_iters=8)(context=task.context, query=task.query)
    assert len(result.sub_questions) == 6
    assert result.answer == task.answer


def test_aggregate_passes_other_questions_through():
    family, task = oolong_task("count")
    lm = SimulatedLM(family.world(), strategy="batched", error_rate=0.0)
    with dspy.context(lm=lm):
        result = DecomposeAggregate(sub_lm=lm, max_iters=8)(context=task.context, query=task.query)
    assert result.sub_questions == [task.query] and family.metric(task.example(), result) == 1.0
