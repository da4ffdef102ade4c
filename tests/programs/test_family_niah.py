"""Needle in a haystack: the gold value is the one stated for the asked key, among decoys."""

from __future__ import annotations

import re

import dspy
import pytest

from dspy_rlm.programs.families import get_family

NIAH = get_family("niah")


@pytest.mark.parametrize("seed", range(5))
def test_the_gold_answer_is_the_value_stated_for_the_asked_key(seed):
    task = NIAH.make_task(2**14, seed)
    key = re.search(r"special magic number for ([\w-]+) mentioned", task.query).group(1)
    stated = re.findall(r"^The special magic number for ([\w-]+) is (\d+)\.$", task.context, re.MULTILINE)
    assert dict(stated)[key] == task.answer
    keys = [k for k, _ in stated]
    assert keys.count(key) == 1 and 4 <= len(keys) <= 11  # one needle, 3-10 decoys with the same template
    assert {k: v for k, v in stated if k != key} == task.meta["distractors"]


def test_the_needle_sits_at_the_recorded_depth():
    for seed in range(8):
        task = NIAH.make_task(2**15, seed)
        lines = task.context.split("\n")
        position = next(i for i, line in enumerate(lines) if task.answer in line)
        assert abs(position / (len(lines) - 1) - task.meta["depth"]) < 0.01


def gold(value="1234567", decoys=None):
    return dspy.Example(answer=value, key="amber-heron", distractors=decoys or {"blue-lynx": "7654321"})


@pytest.mark.parametrize(("answer", "score"), [
    ("1234567", 1.0),
    ("The special magic number is 1234567.", 1.0),
    ("7654321", 0.0),                # a decoy's value
    ("1234567 or 7654321", 0.0),     # hedging between needles is not an answer
    ("123456", 0.0),
    ("", 0.0),
])
def test_metric_on_hand_made_answers(answer, score):
    assert NIAH.metric(gold(), dspy.Prediction(answer=answer)) == score


def test_feedback_names_the_decoy_key():
    feedback = NIAH.metric(gold(), dspy.Prediction(answer="7654321"), pred_name="generate_code").feedback
    assert "the magic number of another key (blue-lynx)" in feedback and "Expected 1234567" in feedback
