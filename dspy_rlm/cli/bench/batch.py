"""`dspy-rlm bench --suite batch`: rows per second of a batch job, in process versus Spark local[1] and local[2].

Every setup answers the same tasks (niah, 4 KB each) with the same logged program on the
simulated model (`batched` strategy, no mistakes) at a fixed latency per model call (100 ms by
default), so the model's waiting dominates as it would with a real provider. Measured per setup:
the job's wall time and rows per second (on Spark, on workers already started), the mean seconds
of a row (the per-row cost), and the start-up: the Spark session, and the workers' start-up
(a warm-up job of two rows per worker, beyond its rows' own time). From the per-row cost comes an
estimate of a cluster's throughput, `workers / cost`, which assumes the model endpoint keeps up
and the start-up is amortised; it is a projection, not a measurement.
**All figures come from the simulated model, not a real language model.**
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

SETUPS = ("in process", "local[1]", "local[2]")
CLUSTER_WORKERS = (8, 64, 256)


def run_batch_bench(rows: int = 200, latency: float = 0.1, *, out: str | Path = "bench_results",
                    quick: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Run the three setups on `rows` tasks (`quick`: 40), print the table, save `batch.json` and `batch.md`."""
    console = console or Console()
    rows, load_before = 40 if quick else rows, _load()
    with tempfile.TemporaryDirectory(prefix="dspy-rlm-bench-batch-") as folder:
        model = _logged_program(Path(folder), latency)
        table = _tasks(rows)
        results = {setup: _measure(setup, model, table) for setup in SETUPS}
    report = {"suite": "batch", "rows": rows, "latency_s": latency, "model": "simulated (not a language model)",
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load_before},
              "setups": results, "cluster_estimate": _projection(results["local[2]"])}
    report["load_after"] = _load()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "batch.md").write_text(markdown(report) + "\n")
    _print(report, console)
    return report


def _logged_program(folder: Path, latency: float) -> str:
    import mlflow

    from dspy_rlm import RLM
    from dspy_rlm.serving.pyfunc import log_rlm_model

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    state = folder / "state.json"
    RLM("context, query -> answer").save(str(state))
    with mlflow.start_run():
        info = log_rlm_model(state, signature="context, query -> answer", model="sim/niah",
                             lm_kwargs={"strategy": "batched", "error_rate": 0.0, "latency": latency},
                             imports=["dspy_rlm.programs.families"])
    return mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(folder / "model"))


def _tasks(rows: int) -> pd.DataFrame:
    from dspy_rlm.programs.families import get_family

    family = get_family("niah")
    tasks = [family.make_task(2**12, 10_000 + seed) for seed in range(rows)]
    return pd.DataFrame([{"context": t.context, "query": t.query, "answer": t.answer} for t in tasks])


def _measure(setup: str, model: str, table: pd.DataFrame) -> dict[str, Any]:
    """In process: the job. On Spark: the session, a warm-up job of a few rows per worker (the workers'
    start-up), then the job on the warm workers."""
    from dspy_rlm.serving.batch import run_batch

    if setup == "in process":
        started = time.perf_counter()
        result = run_batch(model, table)
        return _figures(result, time.perf_counter() - started, table, session=0.0, start_up=0.0)
    from dspy_rlm.serving.spark import run_on_spark, spark_session

    started = time.perf_counter()
    spark = spark_session(setup, app_name="dspy-rlm-bench-batch")
    session = time.perf_counter() - started
    try:
        workers = spark.sparkContext.defaultParallelism
        warm_up = table.head(2 * workers)
        started = time.perf_counter()
        first = run_on_spark(spark, model, warm_up, partitions=workers)
        # The warm-up's time beyond its rows' own (per worker): Python workers starting and importing
        # dspy-rlm and MLflow, the model loading, the sandbox factory loading, Spark scheduling.
        start_up = time.perf_counter() - started - float(first.groupby("worker")["seconds"].sum().max())
        started = time.perf_counter()
        result = run_on_spark(spark, model, table)
        seconds = time.perf_counter() - started
    finally:
        spark.stop()
    return _figures(result, seconds, table, session=session, start_up=start_up)


def _figures(result: pd.DataFrame, seconds: float, table: pd.DataFrame, *, session: float,
             start_up: float) -> dict[str, Any]:
    workers = result["worker"].nunique()
    return {
        "job_seconds": round(seconds, 2),
        "rows_per_second": round(len(result) / seconds, 3),
        "rows_per_second_with_start_up": round(len(result) / (seconds + session + start_up), 3),
        "correct": int((result["answer"] == table["answer"]).sum()),
        "errors": int((result["error"] != "").sum()),
        "workers": int(workers),
        "per_row_seconds": round(float(result["seconds"].mean()), 4),
        "session_start_seconds": round(session, 2),
        "worker_start_up_seconds": round(start_up, 2),
        # The job's time beyond its rows' own time spread over its workers (scheduling, model loads, transfer).
        "job_overhead_seconds": round(seconds - float(result["seconds"].sum()) / workers, 2),
    }


def _projection(local2: dict[str, Any]) -> dict[str, float]:
    """Rows per second on a cluster of W Python workers, from the measured per-row cost (an estimate)."""
    cost = local2["per_row_seconds"]
    return {f"{w} workers": round(w / cost, 1) for w in CLUSTER_WORKERS} if cost > 0 else {}


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def markdown(report: dict[str, Any]) -> str:
    """The report's table in markdown (for the README)."""
    keys = list(next(iter(report["setups"].values())))
    lines = ["| setup | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for setup, figures in report["setups"].items():
        lines.append(f"| {setup} | " + " | ".join(str(figures[k]) for k in keys) + " |")
    base = report["setups"]["in process"]["rows_per_second"]
    ratios = ", ".join(f"{s} {f['rows_per_second'] / base:.2f}x" for s, f in report["setups"].items())
    lines.append(f"\n{report['rows']} rows, {report['latency_s'] * 1000:g} ms per simulated model call; "
                 f"rows/s relative to in process: {ratios}; load {report['machine']['load_before']} before, "
                 f"{report['load_after']} after. Cluster estimate (workers / per-row cost): "
                 + ", ".join(f"{k}: {v} rows/s" for k, v in report["cluster_estimate"].items()))
    return "\n".join(lines)


def _print(report: dict[str, Any], console: Console) -> None:
    """One column per setup, one line per figure (the ratios and the estimate below)."""
    table = Table(title=f"dspy-rlm bench --suite batch: {report['rows']} rows at {report['latency_s'] * 1000:g} ms "
                        "per call (simulated model)")
    table.add_column("figure", style="bold")
    for setup in report["setups"]:
        table.add_column(setup, justify="right")
    for key in next(iter(report["setups"].values())):
        table.add_row(key.replace("_", " "), *(str(figures[key]) for figures in report["setups"].values()))
    console.print(table)
    console.print(markdown(report).splitlines()[-1])
