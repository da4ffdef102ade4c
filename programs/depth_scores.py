"""Accuracy and cost of the simulated model at depth 1 and depth 2, side by side on the same tasks.

    python -m dspy_rlm.programs.depth_scores --family logs --size 32768 --seeds 20

At depth 2 the simulated model hands each log to a child run (`rlm_query_batched`), which
searches it in two steps; at depth 1 it asks the sub-model about whole chunks. **Every figure
here is a simulated-model figure**: it shows what the strategy costs and gains for this model,
not what a real model scores.
"""

from __future__ import annotations

import argparse
import time

import dspy
from rich.console import Console
from rich.table import Table

from dspy_rlm import RLM, SimulatedLM
from dspy_rlm.programs.families import get_family


def compare_depths(family_name: str = "logs", size: int = 2**15, seeds: int = 20, depths: tuple[int, ...] = (1, 2),
                   max_llm_calls: int = 300, max_child_llm_calls: int = 20) -> list[dict]:
    """One row per depth: mean score, calls (root and sub, all depths), tokens and seconds per task."""
    family = get_family(family_name)
    tasks = [family.make_task(size, seed).example() for seed in range(seeds)]
    rows = []
    for depth in depths:
        rlm = RLM(family.signature, max_depth=depth, max_iters=10, max_llm_calls=max_llm_calls,
                  max_child_llm_calls=max_child_llm_calls)
        scores, calls, tokens, started = [], 0, 0, time.perf_counter()
        with dspy.context(lm=SimulatedLM(family.world())):
            for task in tasks:
                prediction = rlm(context=task.context, query=task.query)
                scores.append(family.metric(task, prediction))
                calls += prediction.usage["root_calls"] + prediction.usage["sub_calls"]
                tokens += prediction.usage["total_tokens"]
        rows.append({"depth": depth, "score": sum(scores) / len(tasks), "calls": calls / len(tasks),
                     "tokens": tokens / len(tasks), "seconds": (time.perf_counter() - started) / len(tasks)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="logs")
    parser.add_argument("--size", type=int, default=2**15)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    rows = compare_depths(args.family, args.size, args.seeds)
    table = Table(title=f"{args.family}, {args.seeds} tasks of {args.size:,} characters (simulated model)")
    for column in ("depth", "score", "calls / task", "tokens / task", "seconds / task"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["depth"]), f"{row['score']:.2f}", f"{row['calls']:.1f}", f"{row['tokens']:,.0f}",
                      f"{row['seconds']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
