"""Multi-hop over documents: the gold answer is reached by following the chain through the documents."""

from __future__ import annotations

import re

import dspy
import pytest

from dspy_rlm.programs.families import get_family
from dspy_rlm.programs.families.multihop import read_facts

MULTIHOP = get_family("multihop")


def follow(query: str, docs: list[str]) -> tuple[str, list[int]]:
    """Walk the question's chain hop by hop over the documents' fact sentences; return the answer and the docs used."""
    facts = [(i, relation, slots) for i, doc in enumerate(docs) for relation, slots in read_facts(doc)]
    year = re.search(r"in (\d{4})\?", query).group(1)
    hops = [("named_after", "dish", "festival"), ("hosts", "festival", "town"), ("home_of", "town", "competition")]
    if m := re.search(r"named after the dish (.+?)\. ", query):
        entity, start = m.group(1), 0
    elif m := re.match(r"The (.+?) is hosted by a town", query):
        entity, start = m.group(1), 1
    else:
        entity, start = re.match(r"(.+?) is home to a competition", query).group(1), 2
    used = []
    for relation, key, value in hops[start:]:
        matches = [(i, slots[value]) for i, rel, slots in facts if rel == relation and slots[key] == entity]
        assert len(matches) == 1, (relation, entity, matches)
        used.append(matches[0][0])
        entity = matches[0][1]
    winners = [(i, slots["person"]) for i, rel, slots in facts
               if rel == "won" and slots["competition"] == entity and slots["year"] == year]
    assert len(winners) == 1
    return winners[0][1], used + [winners[0][0]]


@pytest.mark.parametrize("seed", range(10))
def test_following_the_chain_through_the_documents_gives_the_gold_answer(seed):
    task = MULTIHOP.make_task(2**15, seed)
    assert isinstance(task.context, list) and all(isinstance(doc, str) for doc in task.context)
    answer, used = follow(task.query, task.context)
    assert answer == task.answer
    assert sorted(used) == task.meta["evidence"] and len(used) == task.meta["hops"]


def test_questions_have_two_to_four_hops():
    assert {MULTIHOP.make_task(2**13, seed).meta["hops"] for seed in range(30)} == {2, 3, 4}


@pytest.mark.parametrize("seed", range(5))
def test_hard_negatives_share_names_and_competitions_have_other_years(seed):
    task = MULTIHOP.make_task(2**15, seed)
    dish, festival, town, competition = ([None] * (4 - task.meta["hops"]) + task.meta["chain"])[-4:]
    titles = [doc.split("\n", 1)[0] for doc in task.context]
    assert [t for t in titles if t.startswith(town + " ") and t != town]  # a near-duplicate town
    years = [slots["year"] for doc in task.context for rel, slots in read_facts(doc)
             if rel == "won" and slots["competition"] == competition]
    assert len(years) >= 3 and str(task.meta["year"]) in years


@pytest.mark.parametrize(("answer", "score"), [
    ("Ada Venn", 1.0), ("ada venn.", 1.0), ("  Ada   Venn ", 1.0), ("Ada", 0.0), ("Ada Venn and Bo Lind", 0.0),
])
def test_exact_match_after_normalisation(answer, score):
    gold = dspy.Example(answer="Ada Venn", hops=3)
    assert MULTIHOP.metric(gold, dspy.Prediction(answer=answer)) == score
