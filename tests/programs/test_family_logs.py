"""Station logs: a two-hop search inside each of many logs, compared across them (depth 2 pays, simulated)."""

from __future__ import annotations

import re

import dspy
import pytest

from dspy_rlm import RLM, SimulatedLM
from dspy_rlm.programs.families import get_family
from dspy_rlm.programs.families.logs import DAY_ASK, ROOT_ASK, VALUE_ASK
from dspy_rlm.lms.simulated.world import PROMPT_SEPARATOR

LOGS = get_family("logs")


@pytest.mark.parametrize("seed", range(4))
def test_the_gold_station_has_the_highest_reading_on_its_own_recalibration_day(seed):
    task = LOGS.make_task(2**14, seed)
    readings = {}
    for log in task.context:
        name = re.match(r"Station (\w+) log", log).group(1)
        day = re.search(r"was recalibrated on day (\d+)\.", log).group(1)
        readings[name] = int(re.search(rf"^Day {day}: reading (\d+)\.$", log, re.MULTILINE).group(1))
        assert "was postponed." in log  # every log has the decoy note too
    assert readings == task.meta["readings"] and task.answer == max(readings, key=lambda n: (readings[n], n))
    assert 8 <= len(task.context) <= 16


def test_the_simulated_sub_model_reads_one_hop_well_and_two_hops_by_the_first_mention():
    log = ("Station Tormar log\nDay 1: reading 111.\nMaintenance: a recalibration planned for day 2 was postponed.\n"
           "Day 2: reading 222.\nMaintenance: the sensor was recalibrated on day 3.\nDay 3: reading 333.")
    world = LOGS.world()
    assert world.answer(DAY_ASK + PROMPT_SEPARATOR + log) == "3"
    assert world.answer(VALUE_ASK.replace("{entity}", "3") + PROMPT_SEPARATOR + log) == "333"
    assert world.answer(ROOT_ASK + PROMPT_SEPARATOR + log) == "Tormar: 222"  # the decoy came first


def test_scores_name_the_station_and_its_reading():
    gold = dspy.Example(answer="Tormar", readings={"Tormar": 900, "Velsel": 400})
    assert LOGS.score(gold, "Tormar")[0] == 1.0
    score, why = LOGS.score(gold, "Velsel")
    assert score == 0.0 and "Velsel's reading on its own recalibration day was 400" in why


@pytest.mark.slow
def test_at_depth_two_the_simulated_model_runs_a_child_per_log_and_scores_higher():
    tasks = [LOGS.make_task(2**15, seed).example() for seed in range(8)]
    scores = {}
    for depth in (1, 2):
        with dspy.context(lm=SimulatedLM(LOGS.world())):
            rlm = RLM(LOGS.signature, max_depth=depth, max_llm_calls=300, max_child_llm_calls=20)
            predictions = [rlm(context=t.context, query=t.query) for t in tasks]
        scores[depth] = sum(LOGS.metric(t, p) for t, p in zip(tasks, predictions)) / len(tasks)
        children = [c for p in predictions for s in p.trajectory for c in s["children"]]
        assert bool(children) == (depth == 2)
    assert scores[2] > scores[1], scores
