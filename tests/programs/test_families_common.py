"""What every task family promises: seeded sizes, splits, JSONL export and DSPy's metric signature."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm.programs.families import FAMILIES, MAX_SIZE, MIN_SIZE, get_family, load_jsonl

NAMES = list(FAMILIES)


def chars(context) -> int:
    return len(context) if isinstance(context, str) else sum(len(doc) for doc in context)


def test_there_are_six_families():
    assert NAMES == ["niah", "oolong", "pairs", "multihop", "codeqa", "logs"]
    with pytest.raises(ValueError, match="Unknown task family 'nope'; choose one of: niah, oolong"):
        get_family("nope")


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_task_and_another_seed_another(name):
    family = get_family(name)
    first, again, other = family.make_task(2**13, 7), family.make_task(2**13, 7), family.make_task(2**13, 8)
    assert (first.context, first.query, first.answer, first.meta) == (again.context, again.query, again.answer, again.meta)
    assert (first.context, first.query) != (other.context, other.query)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [2**12, 2**16, 2**18])
def test_context_size_follows_the_requested_size(name, size):
    task = get_family(name).make_task(size, 1)
    assert 0.9 * size <= chars(task.context) <= 1.1 * size + 1000


@pytest.mark.parametrize("name", NAMES)
def test_the_smallest_size_still_makes_a_task(name):
    task = get_family(name).make_task(MIN_SIZE, 3)
    assert task.answer and task.query and chars(task.context) <= 2 * MIN_SIZE


@pytest.mark.parametrize("size", [MIN_SIZE - 1, MAX_SIZE + 1, 5000.5, "4096", True])
def test_sizes_out_of_range_are_refused_clearly(size):
    with pytest.raises(ValueError, match=r"size must be a whole number of characters from 1,024 \(2\^10\) to 8,388,608"):
        get_family("niah").make_task(size, 0)


@pytest.mark.parametrize("name", NAMES)
def test_dataset_splits_are_seeded_disjoint_examples(name, tmp_path):
    family = get_family(name)
    splits = family.dataset(n_train=2, n_dev=1, n_test=2, size=2**12, seed=5)
    assert [len(splits.train), len(splits.dev), len(splits.test)] == [2, 1, 2]
    every = splits.train + splits.dev + splits.test
    assert all(set(e.inputs().keys()) == {"context", "query"} for e in every)
    assert len({(e.query, str(e.context)[:2000]) for e in every}) == 5
    assert family.dataset(2, 1, 2, size=2**12, seed=5).test[1].answer == splits.test[1].answer

    paths = splits.export_jsonl(tmp_path)
    loaded = load_jsonl(paths["test"])
    assert [e.toDict() for e in loaded] == [e.toDict() for e in splits.test]
    assert set(loaded[0].inputs().keys()) == {"context", "query"}


@pytest.mark.parametrize("name", NAMES)
def test_metric_takes_dspy_optimizer_arguments_and_returns_a_float(name):
    family = get_family(name)
    gold = family.make_task(2**12, 2).example()
    right = dspy.Prediction(answer=gold.answer)
    assert family.metric(gold, right) == 1.0
    assert family.metric(gold, right, None) == 1.0
    assert isinstance(family.metric(gold, dspy.Prediction(answer="no idea"), trace=None), float)
    assert family.metric(gold, None) == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_metric_gives_gepa_score_and_feedback_when_asked_about_a_predictor(name):
    family = get_family(name)
    gold = family.make_task(2**12, 2).example()
    graded = family.metric(gold, dspy.Prediction(answer="no idea"), None, "generate_code", None)
    assert isinstance(graded, dspy.Prediction)
    assert graded.score < 1.0 and graded.feedback.startswith(f"Score {graded.score:.2f}.")
    assert family.advice() in graded.feedback  # a weak run gets the family's advice
    perfect = family.metric(gold, dspy.Prediction(answer=gold.answer), pred_name="generate_code")
    assert perfect.score == 1.0 and family.advice() not in perfect.feedback


def test_feedback_describes_what_the_run_did():
    family = get_family("niah")
    gold = family.make_task(2**12, 2).example()
    run = dspy.Prediction(answer="1", usage={"sub_calls": 50}, trajectory=[
        {"code": "x = 1", "output": ""},
        {"code": "for c in chunks:\n    llm_query(c)", "output": "BudgetExceeded: sub-LLM call budget exhausted"},
    ])
    feedback = family.metric(gold, run, pred_name="generate_code").feedback
    assert "The run took 2 steps and 50 sub-model calls." in feedback
    assert "ran out of sub-model calls" in feedback
