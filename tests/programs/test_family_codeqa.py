"""Code-repository QA: exactly one choice is true of the generated code, checked by parsing the code."""

from __future__ import annotations

import ast
import re

import dspy
import pytest

from dspy_rlm.programs.families import get_family

CODEQA = get_family("codeqa")


def facts_from_source(context: str) -> dict[str, dict]:
    """Functions' defaults, calls and file writes, and classes' bases, parsed from the files with `ast`."""
    facts = {"defaults": {}, "calls": {}, "writes": {}, "bases": {}}
    files = re.split(r"(?m)^### File: \S+\n", context)[1:]
    assert files
    for source in files:
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                args = node.args
                facts["defaults"][node.name] = {a.arg: ast.literal_eval(d) for a, d in
                                                zip(args.args[len(args.args) - len(args.defaults):], args.defaults)}
                calls = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
                facts["calls"][node.name] = calls - {"open", "str"}
                opened = [c.args[0].value for c in ast.walk(node) if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "open"]
                facts["writes"][node.name] = opened[0] if opened else None
            elif isinstance(node, ast.ClassDef):
                facts["bases"][node.name] = node.bases[0].id if node.bases else None
    return facts


def is_true(statement: str, facts: dict[str, dict]) -> bool:
    if m := re.fullmatch(r"`(\w+)` calls `(\w+)`\.", statement):
        return m.group(2) in facts["calls"][m.group(1)]
    if m := re.fullmatch(r"The parameter `(\w+)` of `(\w+)` defaults to (.+)\.", statement):
        defaults = facts["defaults"][m.group(2)]
        return m.group(1) in defaults and defaults[m.group(1)] == ast.literal_eval(m.group(3))
    if m := re.fullmatch(r"Class `(\w+)` inherits from `(\w+)`\.", statement):
        return facts["bases"][m.group(1)] == m.group(2)
    if m := re.fullmatch(r"`(\w+)` writes to the file '(.+)'\.", statement):
        return facts["writes"][m.group(1)] == m.group(2)
    assert re.fullmatch(r"`\w+` supports multi-GPU training\.", statement), statement
    return False


@pytest.mark.parametrize("seed", range(12))
def test_exactly_one_choice_is_true_of_the_code_and_it_is_the_gold(seed):
    task = CODEQA.make_task(2**15, seed)
    choices = re.findall(r"^([0-3])\) (.+)$", task.query, re.MULTILINE)
    assert [i for i, _ in choices] == ["0", "1", "2", "3"]
    facts = facts_from_source(task.context)
    truths = [i for i, statement in choices if is_true(statement, facts)]
    assert truths == [task.answer]


def test_true_statements_cover_every_fact_kind():
    kinds = {CODEQA.make_task(2**14, seed).meta["true_kind"] for seed in range(40)}
    assert kinds == {"calls", "default", "inherits", "writes"}


@pytest.mark.parametrize(("answer", "score"), [("2", 1.0), ("Answer: 2", 1.0), ("choice 2.", 1.0), ("3", 0.0),
                                                ("12", 0.0), ("none", 0.0)])
def test_accuracy_on_hand_made_answers(answer, score):
    gold = dspy.Example(answer="2", choices=["a", "b", "c", "d"])
    assert CODEQA.metric(gold, dspy.Prediction(answer=answer)) == score
