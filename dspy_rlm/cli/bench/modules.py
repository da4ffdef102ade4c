"""Suite `modules`: dspy.Flex, dspy.CodeAct and dspy.ProgramOfThought on Deno + Pyodide and on eryx.

    dspy-rlm bench --suite modules [--quick]

Each (module, runtime) pair runs in a fresh worker process, with DSPy's `DummyLM` (scripted
answers, so every number is simulated and measures the interpreter, not a model):

* start: the first forward in the process (Deno + Pyodide boot, or the eryx factory load, included);
* call: a later one-step forward (each forward makes, uses and shuts down its own interpreter);
* step: the interpreter's `execute()` time of one warm step inside a forward (the median over the
  steps after the first): a CodeAct code step, a ProgramOfThought retry after failing code; for
  Flex, one more predictor call through the sandbox `dspy` facade (the forward step's execute()
  with 21 calls, less the one with 1 call, over 20);
* 10 MB: a forward whose sandboxed code handles 10 MB (Flex: a 10 MB input crosses into the
  sandbox; CodeAct and PoT: the generated code builds and scans a 10 MB string);
* peak: the peak RSS of the worker process plus that of its largest Deno process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MARKER = "@@MODULES@@"
MODULES = ("flex", "codeact", "pot")
RUNTIMES = ("deno", "eryx")
_STEPS = {"flex": 21, "codeact": 6, "pot": 6}  # steps in the long forward of the `step` column
_BIG = "data = 'ab' * 5_000_000\nprint(data.count('a'))"


def _fence(code: str) -> str:
    return f"```python\n{code}\n```"


def _flex_source(calls: int, big: bool) -> str:
    body = ('answer = str(len(inputs["question"]))' if big else
            f'answer = "".join(self.p(question=str(i)).answer for i in range({calls}))')
    return ("class FlexModule(dspy.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.p = dspy.Predict('question -> answer')\n\n    def forward(self, **inputs):\n"
            f"        {body}\n        return dspy.Prediction(answer=answer)")


class _Timed:
    """A factory whose interpreters record how long each `execute()` took."""

    def __init__(self, factory: Any) -> None:
        self.factory, self.times = factory, []
        self.execution_instructions = getattr(factory, "execution_instructions", "")

    def __call__(self) -> Any:
        interpreter = self.factory()
        run = interpreter.execute

        def execute(code: str, variables: dict | None = None) -> Any:
            started = time.perf_counter()
            try:
                return run(code, variables)
            finally:
                self.times.append(time.perf_counter() - started)

        interpreter.execute = execute
        return interpreter


def _forward(module: str, factory: Any, steps: int = 1, big: bool = False) -> float:
    """One forward of `module` with `steps` steps; returns its seconds."""
    import dspy
    from dspy.utils import DummyLM

    if module == "flex":
        program = dspy.Flex("question -> answer", interpreter_factory=factory)
        program._bind_code(_flex_source(steps, big))
        lm, inputs = DummyLM([{"answer": "x"}] * steps), {"question": "q" * (10 * 2**20 if big else 1)}
    elif module == "codeact":
        code = _BIG if big else "print(1 + 1)"
        answers = [{"reasoning": "r", "generated_code": _fence(code), "finished": i == steps - 1} for i in range(steps)]
        program = dspy.CodeAct("question -> answer", tools=[], max_iters=steps, interpreter_factory=factory)
        lm, inputs = DummyLM([*answers, {"reasoning": "r", "answer": "2"}]), {"question": "q"}
    else:
        fail = [{"reasoning": "r", "generated_code": _fence("raise ValueError('again')")}] * (steps - 1)
        good = {"reasoning": "r", "generated_code": _fence(_BIG if big else "print(1 + 1)")}
        program = dspy.ProgramOfThought("question -> answer", max_iters=steps, interpreter_factory=factory)
        lm, inputs = DummyLM([*fail, good, {"reasoning": "r", "answer": "2"}]), {"question": "q"}
    started = time.perf_counter()
    with dspy.context(lm=lm):
        program(**inputs)
    return time.perf_counter() - started


def _measure(module: str, runtime: str, quick: bool) -> dict[str, Any]:
    import warnings

    from dspy_rlm.cli.bench.memory import peak_rss_mb

    warnings.simplefilter("ignore")
    if runtime == "deno":
        from dspy_rlm.cli.bench.deno import DENO_PEAKS_MB, OfflinePythonInterpreter as factory
    else:
        from dspy_rlm import EryxInterpreter as factory

        DENO_PEAKS_MB = []
    reps = 1 if quick else 3
    start = _forward(module, factory)
    call = statistics.median(_forward(module, factory) for _ in range(reps))
    step = statistics.median(_step_seconds(module, factory) for _ in range(reps))
    big = statistics.median(_forward(module, factory, big=True) for _ in range(reps))
    host = peak_rss_mb() or 0.0
    return {"module": module, "runtime": runtime, "start_s": start, "call_s": call,
            "step_ms": step * 1000, "mb10_s": big,
            "peak_mb": host + max(DENO_PEAKS_MB, default=0.0), "host_peak_mb": host}


def _step_seconds(module: str, factory: Any) -> float:
    timed = _Timed(factory)
    _forward(module, timed, steps=_STEPS[module])
    if module != "flex":
        return statistics.median(timed.times[-(_STEPS[module] - 1):])
    many = timed.times[-1]
    timed.times.clear()
    _forward(module, timed, steps=1)
    return max(many - timed.times[-1], 0.0) / (_STEPS[module] - 1)


def _row_cells(deno: dict | None, eryx: dict | None, key: str, scale: str) -> list[str]:
    def cell(result: dict | None) -> str:
        return "error" if result is None or "error" in result else f"{result[key]:{scale}}"

    ratio = "" if not deno or not eryx or "error" in deno or "error" in eryx or not eryx[key] else \
        f"{deno[key] / eryx[key]:.1f}×"
    return [cell(deno), cell(eryx), ratio]


def markdown(results: list[dict]) -> str:
    """The table: per module, Deno and eryx side by side, and Deno / eryx."""
    columns = [("start_s", "start (s)", ".2f"), ("call_s", "call (s)", ".3f"), ("step_ms", "step (ms)", ".1f"),
               ("mb10_s", "10 MB (s)", ".3f"), ("peak_mb", "peak (MiB)", ".0f")]
    head = "| module | " + " | ".join(f"{title} Deno | eryx | ratio" for _, title, _ in columns) + " |"
    lines = [head, "|" + "---|" * (1 + 3 * len(columns))]
    by = {(r.get("module"), r.get("runtime")): r for r in results}
    for module in MODULES:
        cells = [c for key, _, scale in columns
                 for c in _row_cells(by.get((module, "deno")), by.get((module, "eryx")), key, scale)]
        lines.append(f"| {module} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_modules_bench(out: str | Path = "bench_results", quick: bool = False, say=print) -> dict:
    """Run every (module, runtime) pair in its own worker; print and save the table (JSON + markdown)."""
    from dspy_rlm.cli.bench.deno import ensure_deno

    runtime, why = ensure_deno(say=say)
    env = {**os.environ, **(runtime.environment() if runtime else {})}
    load_before = os.getloadavg()[0]
    results = []
    for module in MODULES:
        for name in RUNTIMES:
            if name == "deno" and runtime is None:
                results.append({"module": module, "runtime": name, "error": why})
                continue
            say(f"modules: {module} on {name}")
            job = json.dumps({"module": module, "runtime": name, "quick": quick})
            done = subprocess.run([sys.executable, "-m", "dspy_rlm.cli.bench.modules", job], capture_output=True,
                                  text=True, timeout=1800, env=env, check=False)
            line = next((l for l in reversed(done.stdout.splitlines()) if l.startswith(MARKER)), None)
            results.append(json.loads(line[len(MARKER):]) if line else
                           {"module": module, "runtime": name, "error": (done.stderr or done.stdout)[-400:]})
    report = {"suite": "modules", "quick": quick, "load_before": load_before, "load_after": os.getloadavg()[0],
              "results": results, "table": markdown(results)}
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"modules{'-quick' if quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(report["table"] + "\n")
    say(report["table"])
    say(f"load average before / after: {load_before:.2f} / {report['load_after']:.2f}; saved {stem}.json/.md")
    return report


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    try:
        result = _measure(job["module"], job["runtime"], job["quick"])
    except Exception as exc:  # reported as the cell's error, not a crash of the suite
        result = {"module": job["module"], "runtime": job["runtime"], "error": f"{type(exc).__name__}: {exc}"}
    print(MARKER + json.dumps(result))
