"""Before and after `Stabilize`, per task family, on the held-out test split, with the simulated model.

    python -m dspy_rlm.optimizers.stabilize_bench --families niah oolong codeqa multihop pairs

Prints one table (score, root-model calls, tokens and seconds per task, before and after, side by
side) and saves it with the load average to `bench_results/stabilize.json`. **Every figure is a
simulated-model figure**: it shows what the pipeline does, not what a real model would score.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import dspy

from dspy_rlm.optimizers.families import load_family
from dspy_rlm.optimizers.passes import run_pass
from dspy_rlm.optimizers.stabilize import Stabilize


def measure(family: str, sizes: dict[str, int], seed: int = 0) -> dict[str, Any]:
    """One family: compile with Stabilize on train/dev, then run both programs on test."""
    setup = load_family(family, "sim", sizes=sizes, seed=seed)
    with dspy.context(lm=setup.lm):
        started = time.perf_counter()
        compiled = Stabilize(metric=setup.metric, program_name=family).compile(
            setup.program, trainset=setup.train, valset=setup.dev)
        compile_seconds = time.perf_counter() - started
        before = run_pass(setup.program, setup.test, setup.metric, "test").summary()
        after = run_pass(compiled, setup.test, setup.metric, "test").summary()
    report = compiled.stabilize_report
    return {"family": family, "before": before, "after": after, "compile_seconds": round(compile_seconds, 2),
            "accepted": report.accepted, "rejected": report.rejected, "solver": report.solver,
            "root_call_ratio": round(before["root_calls_per_task"] / after["root_calls_per_task"], 2)
            if after["root_calls_per_task"] else None}


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| family | score before | score after | root calls/task before | after | ratio | tokens/task before "
            "| after | s/task before | after | library (solver) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        b, a = r["before"], r["after"]
        ratio = f"{r['root_call_ratio']}x" if r["root_call_ratio"] else ("inf (0 calls)" if not a["root_calls_per_task"]
                                                                          and b["root_calls_per_task"] else "-")
        library = ", ".join(r["accepted"]) or "none"
        library += f" (solver: {r['solver']})" if r["solver"] else " (no solver)"
        lines.append(f"| {r['family']} | {b['score']:.3f} | {a['score']:.3f} | {b['root_calls_per_task']:.2f} | "
                     f"{a['root_calls_per_task']:.2f} | {ratio} | {b['tokens_per_task']:.0f} | {a['tokens_per_task']:.0f} | "
                     f"{b['seconds_per_task']:.3f} | {a['seconds_per_task']:.3f} | {library} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["niah", "oolong", "codeqa", "multihop", "pairs"])
    parser.add_argument("--train", type=int, default=8)
    parser.add_argument("--dev", type=int, default=8)
    parser.add_argument("--test", type=int, default=12)
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--out", default="bench_results")
    args = parser.parse_args(argv)
    sizes = {"train": args.train, "dev": args.dev, "test": args.test, "context": args.context}
    load_before = os.getloadavg()
    rows = [measure(family, sizes) for family in args.families]
    text = table(rows)
    print("Stabilize, before and after, on the test split (SIMULATED model: pipeline figures, not model figures)")
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"simulated": True, "sizes": sizes, "loadavg_before_after": [load_before, os.getloadavg()], "rows": rows,
              "table": text}
    (out / "stabilize.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out / 'stabilize.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
