"""The benchmark's workloads, run one per fresh worker process:

    python -m dspy_rlm.cli.bench.workloads '<job as JSON>'

prints one line `BENCH-RESULT {...}`. Every root model is a `ScriptedLM` answering from the
same trajectory for every setup (it reads the iteration number from the prompt), with zero
latency; sub-queries are scripted too (200 ms each in the batched workload). So the numbers
are framework and sandbox costs, not model time.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, Callable

MARKER = "BENCH-RESULT "
SIGNATURE = "context, query -> answer"
WORKLOADS: dict[str, Callable[[dict, Any], dict]] = {}

# The 4-step trajectory of the context workloads (and of each concurrent call).
CONTEXT_STEPS = [
    "print(len(context))",
    "print(context[:200])",
    "hits = context.count('needle')\nprint(hits)",
    "SUBMIT(answer=str(hits))",
]


def workload(name: str):
    def register(fn):
        WORKLOADS[name] = fn
        return fn

    return register


def make_context(mib: float) -> str:
    """`mib` MiB of ASCII text in ~60-character lines, with quotes, backslashes and a
    'needle' every 500 lines: a literal-unfriendly context, as real text is."""
    lines = [f"record {i:05d}: user{(i * 7919) % 997} said \"it's \\ fine\" at {i % 24:02d}h"
             + (" needle" if i % 500 == 0 else "") for i in range(20_000)]
    block = "\n".join(lines) + "\n"
    size = int(mib * 2**20)
    return (block * (size // len(block) + 1))[:size]


class Root:
    """The scripted root model: step `k` of `codes` at iteration `k`; records when each request
    arrived and how long its prompt was."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = codes
        self.times: list[float] = []
        self.walls: list[float] = []
        self.prompt_chars: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> dict[str, str]:
        now, wall = time.perf_counter(), time.time()
        iteration = int((request.field("iteration") or "1").split("/")[0])
        with self._lock:
            self.times.append(now)
            self.walls.append(wall)
            self.prompt_chars.append(len(request.text))
        code = self.codes[min(iteration, len(self.codes)) - 1]
        return {"reasoning": f"step {iteration}", "code": f"```python\n{code}\n```"}


def sub_answer(request: Any) -> Any:
    # dspy_rlm.RLM asks through a Predict (fields), dspy.RLM calls the LM with a bare prompt.
    return {"response": "ok"} if request.output_fields else "ok"


def _lms(codes: list[str], sub_latency: float = 0.0):
    from dspy_rlm import ScriptedLM

    root = Root(codes)
    return root, ScriptedLM(root, model="scripted/root"), ScriptedLM(sub_answer, model="scripted/sub", latency=sub_latency)


def _call(module: Any, lm: Any, **inputs: Any) -> tuple[Any, float]:
    import dspy

    start = time.perf_counter()
    with dspy.context(lm=lm):
        prediction = module(**inputs)
    return prediction, time.perf_counter() - start


@workload("start")
def start(job: dict, build) -> dict:
    codes = ["print(len(context))", "SUBMIT(answer='ok')"]
    root, lm, sub = _lms(codes)
    module = build(max_iters=len(codes), sub_lm=sub)
    began = time.perf_counter()
    prediction, total = _call(module, lm, context="hello", query="q")
    return {
        "call_to_first_step_s": root.times[1] - began,
        "process_to_first_step_s": root.walls[1] - job["spawn_wall"],
        "call_s": total,
        "answer_ok": prediction.answer == "ok",
    }


@workload("iterations")
def iterations(job: dict, build) -> dict:
    n = job["params"]["n"]
    codes = [f"print({i})" for i in range(1, n + 1)] + ["SUBMIT(answer='ok')"]
    root, lm, sub = _lms(codes)
    module = build(max_iters=len(codes), sub_lm=sub)
    prediction, total = _call(module, lm, context="hello", query="q")
    # Request k+1 arrives when step k has run; skip step 1 (it may include start-up).
    intervals = [b - a for a, b in zip(root.times[1:], root.times[2:])]
    return {
        "iterations": len(root.times),
        "per_iteration_s": sorted(intervals)[len(intervals) // 2],
        "per_iteration_mean_s": sum(intervals) / len(intervals),
        "call_s": total,
        "root_prompt_chars": root.prompt_chars,
        "answer_ok": prediction.answer == "ok",
    }


@workload("context")
def context(job: dict, build) -> dict:
    text = make_context(job["params"]["mib"])
    expected = str(text.count("needle"))
    root, lm, sub = _lms(CONTEXT_STEPS)
    module = build(max_iters=len(CONTEXT_STEPS), sub_lm=sub)
    prediction, total = _call(module, lm, context=text, query="How many needles?")
    return {"call_s": total, "answer_ok": prediction.answer == expected,
            "root_prompt_chars": root.prompt_chars, "context_mib": job["params"]["mib"]}


@workload("batched")
def batched(job: dict, build) -> dict:
    n, latency = job["params"]["prompts"], job["params"]["latency_s"]
    codes = [f"answers = llm_query_batched([f'question {{i}}' for i in range({n})])\nprint(len(answers), answers[0])",
             "SUBMIT(answer=answers[0])"]
    root, lm, sub = _lms(codes, sub_latency=latency)
    module = build(max_iters=len(codes), sub_lm=sub, max_llm_calls=n + 10,
                   max_concurrency=job["params"].get("concurrency"))
    prediction, total = _call(module, lm, context="hello", query="q")
    # dspy.RLM's llm_query_batched runs a fixed pool of 8 threads.
    return {"batch_step_s": root.times[1] - root.times[0], "call_s": total, "concurrency": getattr(module, "max_concurrency", 8),
            "sub_calls": len(sub.requests), "answer_ok": prediction.answer == "ok"}


@workload("threads")
def threads(job: dict, build) -> dict:
    count = job["params"]["threads"]
    root, lm, sub = _lms(CONTEXT_STEPS)
    module = build(max_iters=len(CONTEXT_STEPS), sub_lm=sub)
    texts = [make_context(0.01) + "needle " * k for k in range(count)]
    answers: dict[int, Any] = {}

    def one(k: int) -> None:
        try:
            answers[k] = _call(module, lm, context=texts[k], query="q")[0].answer
        except Exception as exc:  # reported, not raised: the other threads' numbers still count
            answers[k] = f"{type(exc).__name__}: {exc}"

    began = time.perf_counter()
    workers = [threading.Thread(target=one, args=(k,)) for k in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - began
    ok = all(answers[k] == str(texts[k].count("needle")) for k in range(count))
    return {"wall_s": wall, "threads": count, "answer_ok": ok,
            "errors": sorted({a for a in answers.values() if ":" in str(a)})[:3]}


def run_job(job: dict) -> dict:
    """Run one job in this process and return its measurements."""
    from dspy_rlm.cli.bench.memory import peak_rss_mb
    from dspy_rlm.cli.bench.setups import build_module

    setup = job["setup"]
    if setup == "a":
        from dspy_rlm.cli.bench.deno import DenoRuntime

        DenoRuntime(**job["deno"]).activate()

    def build(*, max_iters: int, sub_lm: Any, max_llm_calls: int = 200, max_concurrency: int | None = None):
        return build_module(setup, SIGNATURE, max_iters=max_iters, max_llm_calls=max_llm_calls, sub_lm=sub_lm,
                            max_concurrency=max_concurrency)

    result = WORKLOADS[job["workload"]](job, build)
    result["worker_peak_mb"] = peak_rss_mb()
    if setup == "a":
        from dspy_rlm.cli.bench.deno import DENO_PEAKS_MB

        result["deno_peaks_mb"] = list(DENO_PEAKS_MB)
    result["peak_mb_total"] = (result["worker_peak_mb"] or 0) + sum(result.get("deno_peaks_mb", []))
    return result


def main(argv: list[str] | None = None) -> int:
    entered = time.time()
    job = json.loads((argv or sys.argv[1:])[0])
    logging.disable(logging.WARNING)  # dspy.RLM warns once per call that EryxInterpreter has no facade
    try:
        result = run_job(job)
        # `-m dspy_rlm.cli.bench.workloads` imported dspy_rlm (so dspy and mlflow) before main(): every setup pays it.
        result["startup_and_imports_s"] = entered - job["spawn_wall"]
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
