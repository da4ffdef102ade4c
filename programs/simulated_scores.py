"""Measure the simulated model per family: bare prompt, hinted prompts, and each strategy forced.

    python -m dspy_rlm.programs.simulated_scores --size 32768 --seeds 24

"Hinted" prompts carry what an optimizer could find: the family's one-line
advice in the instructions, demos of the best strategy's code, or both.
**Every figure here is a simulated-model figure**: it shows how the
simulator's behaviour moves with its prompt, not what a real model scores.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import dspy

from dspy_rlm import RLM, SimulatedLM
from dspy_rlm.lms.simulated.strategies import STRATEGIES
from dspy_rlm.programs.families import FAMILIES, get_family

BEST = {"niah": "regex", "oolong": "batched", "pairs": "batched", "multihop": "regex", "codeqa": "batched"}


def run_once(family_name: str, size: int, seed: int, *, instructions: str | None = None, demos: list | None = None,
             max_iters: int = 8, lm_seed: int | None = None, **sim_options: Any) -> tuple[Any, dspy.Prediction, float]:
    """One RLM call on task `seed` with the simulated model as root and sub-model: (task, prediction, score).

    `instructions` replace the task instructions, `demos` become `generate_code` demos, `sim_options`
    go to `SimulatedLM`, whose seed is `lm_seed` (default: the task seed)."""
    family = get_family(family_name)
    task = family.make_task(size, seed)
    lm = SimulatedLM(family.world(), seed=seed if lm_seed is None else lm_seed, **sim_options)
    signature = dspy.ensure_signature(family.signature)
    if instructions:
        signature = signature.with_instructions(instructions)
    rlm = RLM(signature, sub_lm=lm, max_iters=max_iters)
    rlm.generate_code.demos = list(demos or [])
    with dspy.context(lm=lm):
        prediction = rlm(context=task.context, query=task.query)
    return task, prediction, family.metric(task.example(), prediction)


def strategy_demo(family_name: str, strategy: str) -> dspy.Example:
    """A `generate_code` demo: the work step of a run (on another task) that used `strategy`."""
    _, prediction, _ = run_once(family_name, 2**13, 999, strategy=strategy)
    step = next(s for s in prediction.trajectory if s["code"].startswith("# sim: work"))
    return dspy.Example(variables_info="(an earlier task)", repl_history="(earlier steps)", iteration="2/8",
                        reasoning=step["reasoning"], code=f"```python\n{step['code']}\n```")


def measure(family_name: str, size: int, seeds: int) -> dict[str, float]:
    """Mean score per condition over tasks 0..seeds-1."""
    advice = get_family(family_name).advice()
    demos = [strategy_demo(family_name, BEST[family_name])] * 3
    conditions: dict[str, dict[str, Any]] = {
        "bare prompt": {}, "advice": {"instructions": advice}, "3 demos": {"demos": demos},
        "advice + 3 demos": {"instructions": advice, "demos": demos},
        **{f"{strategy} forced": {"strategy": strategy} for strategy in STRATEGIES},
    }
    return {name: statistics.mean(run_once(family_name, size, seed, **options)[2] for seed in range(seeds))
            for name, options in conditions.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2**15)
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args(argv)
    rows = {name: measure(name, args.size, args.seeds) for name in args.families.split(",")}
    columns = list(next(iter(rows.values())))
    print(f"Simulated-model scores, mean of {args.seeds} tasks at {args.size:,} characters:\n")
    print("| family | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, scores in rows.items():
        print(f"| {name} | " + " | ".join(f"{scores[c]:.2f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
