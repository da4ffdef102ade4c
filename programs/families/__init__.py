"""Seeded task families with metrics, datasets and worlds for the simulated model.

    from dspy_rlm.programs.families import get_family
    family = get_family("oolong")
    task = family.make_task(size=2**16, seed=0)        # one task
    splits = family.dataset(8, 8, 16, size=2**14)      # dspy.Examples
    family.metric(example, prediction)                 # DSPy / GEPA metric

Importing this package registers each family's world with the simulated
model, so `dspy_rlm.lms.simulated.lm.make_lm("sim/oolong")` works.
"""

from __future__ import annotations

from dspy_rlm.lms.simulated.world import register_world
from dspy_rlm.programs.families.base import MAX_SIZE, MIN_SIZE, Splits, Task, TaskFamily, load_jsonl
from dspy_rlm.programs.families.codeqa import CodeQAFamily
from dspy_rlm.programs.families.logs import LogsFamily
from dspy_rlm.programs.families.multihop import MultiHopFamily
from dspy_rlm.programs.families.niah import NeedleFamily
from dspy_rlm.programs.families.oolong import OolongFamily
from dspy_rlm.programs.families.pairs import PairsFamily

FAMILIES: dict[str, TaskFamily] = {
    family.name: family for family in (NeedleFamily(), OolongFamily(), PairsFamily(), MultiHopFamily(), CodeQAFamily(),
                                        LogsFamily())
}
for _family in FAMILIES.values():
    register_world(_family.name, _family.world)


def get_family(name: str) -> TaskFamily:
    """The family called `name`; a clear error lists the families that exist."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown task family {name!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


__all__ = ["FAMILIES", "MAX_SIZE", "MIN_SIZE", "Splits", "Task", "TaskFamily", "get_family", "load_jsonl"]
