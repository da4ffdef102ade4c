"""What `RLM(isolate_process=True)` costs: one RLM call in process, and in a worker process.

    .venv/bin/python scripts/bench_isolation.py [--calls 7]

Each call is 3 scripted steps over a 1 MB context (the LM is scripted, zero latency, so
this is sandbox cost only). "cold" stops the idle workers before each call, so every
call waits for a process to start; "warm" is calls one after another, each reusing the
worker an earlier call left idle. Prints a table and saves
bench_results/isolation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dspy  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dspy_rlm import RLM, ScriptedLM  # noqa: E402
from dspy_rlm.sandbox import isolated  # noqa: E402

CONTEXT = "lorem ipsum " * 90_000


def one_call(isolate: bool) -> float:
    lm = ScriptedLM([{"reasoning": "next", "code": f"```python\n{code}\n```"}
                     for code in ("n = len(context)", "print(n)", "SUBMIT(answer=str(n))")])
    started = time.perf_counter()
    with dspy.context(lm=lm):
        result = RLM("context -> answer", isolate_process=isolate)(context=CONTEXT)
    seconds = time.perf_counter() - started
    if result.answer != str(len(CONTEXT)):
        raise SystemExit(f"wrong answer {result.answer!r}: the measurement is void")
    return seconds


def cold_call() -> float:
    isolated.stop_idle_workers()
    return one_call(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=7)
    args = parser.parse_args()
    setups = {"in process": lambda: one_call(False), "worker process, warm": lambda: one_call(True),
              "worker process, cold": cold_call}
    for measure in setups.values():
        measure()  # warm-up: imports, factory
    times: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.calls):
        for name, measure in setups.items():  # interleaved, so load changes hit every setup alike
            times[name].append(measure())
    base = statistics.median(times["in process"])
    table = Table(title=f"RLM call, 3 steps, 1 MB context, scripted LM ({args.calls} calls each; "
                        f"load average {os.getloadavg()[0]:.2f})")
    for column in ("setup", "median", "min", "× in process"):
        table.add_column(column, justify="right" if column != "setup" else "left")
    rows = []
    for name, xs in times.items():
        median = statistics.median(xs)
        rows.append({"setup": name, "median_ms": round(median * 1000, 1), "min_ms": round(min(xs) * 1000, 1),
                     "ratio": round(median / base, 1)})
        table.add_row(name, f"{median * 1000:.0f} ms", f"{min(xs) * 1000:.0f} ms", f"{median / base:.1f}×")
    Console().print(table)
    out = Path("bench_results")
    out.mkdir(exist_ok=True)
    (out / "isolation.json").write_text(json.dumps({"calls": args.calls, "rows": rows}, indent=2))
    print(f"saved {out / 'isolation.json'}")


if __name__ == "__main__":
    main()
