"""Running a benchmark suite: the job list, one fresh worker process per job, the report."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dspy_rlm import settings
from dspy_rlm.cli.bench import report as rep
from dspy_rlm.cli.bench.setups import SETUPS, SUITES
from dspy_rlm.cli.bench.workloads import MARKER

WORKLOAD_NAMES = ("start", "iterations", "context", "batched", "threads")
BATCH = {"prompts": 100, "latency_s": 0.2}


def plan(suite: str, quick: bool, only: list[str] | None = None) -> list[dict]:
    """The jobs of a suite, grouped by workload so that a change in machine load hits
    every setup alike. Each job is {setup, workload, params, rep, timeout_s}."""
    setups = [s for s in SUITES[suite] if s != "c_floor"] if suite == "compare" else SUITES[suite]
    jobs: list[dict] = []

    def add(workload: str, params: dict, reps: dict[str, int] | int, among: list[str] | None = None) -> None:
        for rep_index in range(max(reps.values()) if isinstance(reps, dict) else reps):
            for setup in among or setups:
                wanted = reps.get(setup, 1) if isinstance(reps, dict) else reps
                if rep_index < wanted:
                    big = setup == "a" and params.get("mib", 0) >= 50
                    jobs.append({"setup": setup, "workload": workload, "params": dict(params), "rep": rep_index,
                                 "timeout_s": 900 if big else 300})

    if suite == "compare":
        add("start", {}, 1 if quick else 3)
        add("iterations", {"n": 10 if quick else 20}, 1 if quick else 3, [*setups, "c_floor"])
        for mib in [1] if quick else [1, 10, 50, 100]:
            add("context", {"mib": mib}, 1 if quick or mib >= 50 else {"a": 1, "b": 2, "c": 2, "d": 2})
        add("batched", dict(BATCH), 1)
        add("threads", {"threads": 2 if quick else 8}, 1)
    else:
        add("start", {}, 1 if quick else 3, ["c"])
        add("iterations", {"n": 10 if quick else 20}, 1 if quick else 3)
        for mib in [10] if quick else [1, 10, 100]:
            add("context", {"mib": mib}, 1 if quick or mib >= 100 else 2, ["c"])
        add("batched", dict(BATCH), 1, ["c"])
        if not quick:
            add("batched", {**BATCH, "concurrency": 100}, 1, ["c"])
    return [job for job in jobs if not only or job["workload"] in only]


def run_job(job: dict, deno: dict | None, env: dict[str, str]) -> dict:
    """Run one job in a fresh Python process; return its result (or {"error": ...})."""
    payload = {**job, "deno": deno, "spawn_wall": time.time()}
    cmd = [sys.executable, "-m", "dspy_rlm.cli.bench.workloads", json.dumps(payload)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=job["timeout_s"], env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {job['timeout_s']} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    return {"error": f"worker exited with code {done.returncode}: {tail[-500:]}"}


def machine(deno_version: str | None) -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        cpu = platform.processor() or cpu
    ram = 0.0
    try:
        with open("/proc/meminfo") as info:
            ram = int(next(line for line in info if line.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    import dspy

    return {"cpus": os.cpu_count(), "cpu_model": cpu, "ram_gib": ram, "python": platform.python_version(),
            "platform": platform.platform(), "dspy": dspy.__version__, "pyeryx": version("pyeryx"),
            "deno": deno_version, "load_before": os.getloadavg()[0]}


def run_bench(suite: str = "compare", quick: bool = False, out: str | Path = "bench_results",
              tracking_uri: str | None = settings.TRACKING_URI, only: list[str] | None = None,
              console: Console | None = None) -> dict:
    """Run a suite, print its table, and save JSON, markdown and a PNG under `out`
    (and an MLflow run, unless `tracking_uri` is empty). Returns the report."""
    console = console or Console()
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose from {sorted(SUITES)}")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan(suite, quick, only)
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    deno, unavailable = None, {}
    if "a" in {job["setup"] for job in jobs}:
        from dspy_rlm.cli.bench.deno import ensure_deno

        console.print("[bold]Setup (a):[/] Deno + Pyodide, offline")
        runtime, reason = ensure_deno(lambda text: console.print(f"  {text}"))
        if runtime is None:
            unavailable["a"] = reason
            console.print(f"[yellow]Setup (a) is unavailable: {reason}. Running the other setups; "
                          "ratios against (a) are left out.[/]")
            jobs = [job for job in jobs if job["setup"] != "a"]
        else:
            deno = runtime.__dict__
            console.print(f"  Deno {runtime.version} ({runtime.source}), Pyodide via npm, DENO_DIR {runtime.deno_dir}")
    info = machine(deno["version"] if deno else None)
    console.print(f"[bold]{len(jobs)} measurements[/], each in a fresh process; load average {info['load_before']:.2f}. "
                  "The LM is scripted (zero latency except where stated).")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("bench", total=len(jobs))
        for job in jobs:
            progress.update(task, description=f"({job['setup']}) {job['workload']} {_params(job)}")
            began = time.perf_counter()
            job["load_before"] = os.getloadavg()[0]
            job["result"] = run_job(job, deno, env)
            job["seconds"] = time.perf_counter() - began
            if "error" in job["result"]:
                progress.console.print(f"[red]({job['setup']}) {job['workload']} {_params(job)}: {job['result']['error']}[/]")
            progress.advance(task)
    info["load_after"] = os.getloadavg()[0]
    info["load_max"] = max([info["load_before"], *(job.get("load_before", 0) for job in jobs)])
    if suite == "compare":  # the floor (d), and each module's own loop on exec
        summary = rep.summarize(jobs, {"a": "d", "b": "d", "c": "d"}, {"a": "d", "b": "d", "c": "c_floor"})
    else:
        summary = rep.summarize(jobs, {"c": "c_floor"})
    setups = {key: SETUPS[key] for key in SUITES[suite]}
    report = {
        "suite": suite, "quick": quick, "command": _command(suite, quick, only), "machine": info,
        "setups": setups, "unavailable": unavailable, "lm": rep.LM_NOTE, "summary": summary,
        "table": rep.markdown_table(summary, setups, baseline="a" if suite == "compare" and "a" in summary else None),
        "targets": [t for t in (rep.compare_targets(summary) if suite == "compare" else rep.core_targets(summary))
                    if not only or t["measured"] not in ("not measured", "–")],
        "results": jobs, "seconds": time.perf_counter() - started,
    }
    stem = out / f"{suite}{'-quick' if quick else ''}{''.join('-' + w for w in only or [])}"
    files = [stem.with_suffix(".json"), stem.with_suffix(".md"), stem.with_suffix(".png")]
    rep.save_json(report, files[0])
    files[1].write_text(rep.document(report))
    problem = rep.save_chart(report, files[2])
    console.print()
    console.print(rep.document(report), markup=False, highlight=False, soft_wrap=True)
    if problem:
        console.print(f"[yellow]{problem}[/]")
    if tracking_uri:
        try:
            run_id = rep.log_to_mlflow(report, files, tracking_uri)
            console.print(f"Logged to MLflow ({tracking_uri}), experiment dspy-rlm-bench, run {run_id}")
        except Exception as exc:  # the measurements are saved already; say what failed
            console.print(f"[yellow]Could not log to MLflow ({tracking_uri}): {type(exc).__name__}: {exc}[/]")
    console.print(f"Saved {', '.join(str(f) for f in files if f.exists())}")
    return report


def _params(job: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in job["params"].items()) + (f" #{job['rep'] + 1}" if job["rep"] else "")


def _command(suite: str, quick: bool, only: list[str] | None) -> str:
    parts = ["dspy-rlm bench", f"--suite {suite}"]
    if quick:
        parts.append("--quick")
    if only:
        parts.append(f"--only {','.join(only)}")
    return " ".join(parts)


def _pythonpath() -> str:
    # Workers import this package the way this process did (also from a source tree).
    root = str(Path(__file__).resolve().parents[3])
    current = os.environ.get("PYTHONPATH")
    return root if not current else f"{root}{os.pathsep}{current}"
