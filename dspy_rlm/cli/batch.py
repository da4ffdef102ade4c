"""`dspy-rlm batch`: a logged RLM program over a table of tasks, in process or on Spark.

    dspy-rlm batch --model models:/m-123 --input tasks.parquet --output answers.parquet
    dspy-rlm batch --model models:/m-123 --input tasks.jsonl --output answers.jsonl --spark local[2]
    dspy-rlm batch ... --metric niah          # evaluation: score each row, log the aggregate

One row per task; the output holds the input columns and each row's record (outputs, usage,
seconds, error: see `dspy_rlm.serving.rows`). The MLflow run (`--tracking-uri`, also where the
model URI is looked up) gets the job's settings, totals and, with `--metric`, the per-row
table and the mean score; in process, each row's trace too.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dspy_rlm import settings

EXPERIMENT = "dspy-rlm-batch"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `batch` subcommand's arguments."""
    batch = commands.add_parser("batch", help="run a logged RLM program over a table of tasks (parquet, jsonl, csv), "
                                              "in process or on Spark; --metric scores it")
    batch.add_argument("--model", required=True, metavar="MODEL_URI",
                       help="the pyfunc model: models:/..., runs:/.../rlm_program, or a local model folder")
    batch.add_argument("--input", required=True, metavar="FILE", help="one task per row: .parquet, .jsonl or .csv")
    batch.add_argument("--output", required=True, metavar="FILE", help="where the answers go: .parquet, .jsonl or .csv")
    batch.add_argument("--spark", metavar="MASTER", help="run on Spark: local[N] or spark://host:port "
                                                         "(needs pip install 'dspy-rlm[spark]'); default: in process")
    batch.add_argument("--partitions", type=int, help="Spark tasks (default: one per 20 rows)")
    batch.add_argument("--metric", metavar="FAMILY|module:function",
                       help="score each row with a task family's metric (niah, oolong, ...) or a DSPy metric function; "
                            "the input needs the gold columns")
    batch.add_argument("--max-iters", type=int, help="per-row limit on REPL steps (default: the program's)")
    batch.add_argument("--max-llm-calls", type=int, help="per-row limit on sub-model calls")
    batch.add_argument("--max-time", type=float, help="per-row limit in seconds")
    batch.add_argument("--max-tokens", type=int, help="per-row limit on tokens")
    batch.add_argument("--max-cost", type=float, help="per-row limit in US dollars (estimated)")
    batch.add_argument("--max-concurrency", type=int, help="sub-queries in flight per row")
    batch.add_argument("--on-limit", choices=["raise", "extract", "return"], default="raise",
                       help="a row at a limit: record the error and best answer (raise, default), or answer from "
                            "the history (extract), or return the best answer as if it succeeded")
    batch.add_argument("--tracking-uri", default=settings.TRACKING_URI, help="MLflow store ('' to disable)")
    batch.add_argument("--experiment", default=EXPERIMENT, help=f"MLflow experiment (default {EXPERIMENT})")
    batch.add_argument("--verbose", action="store_true", help="show the libraries' own log messages too")


def run(args: argparse.Namespace) -> int:
    """Run `dspy-rlm batch`; bad input is one line on stderr and exit status 2."""
    console = Console(stderr=True)
    try:
        totals = run_job(args, console)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"dspy-rlm batch: error: {error}", file=sys.stderr)
        return 2
    print_totals(totals, args)
    return 0


def run_job(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Read, answer (in process or on Spark), score, write and track; return the totals."""
    import mlflow

    from dspy_rlm.serving.batch import read_table, summary, table_format, write_table
    from dspy_rlm.serving.rows import BatchSettings

    table_format(args.output)  # a bad output name fails now, not after the job
    metric = _metric(args.metric) if args.metric else None
    batch_settings = BatchSettings(max_iters=args.max_iters, max_llm_calls=args.max_llm_calls, max_time=args.max_time,
                                   max_tokens=args.max_tokens, max_cost=args.max_cost,
                                   max_concurrency=args.max_concurrency, on_limit=args.on_limit)
    if args.spark:
        from dspy_rlm.serving.spark import require_pyspark

        require_pyspark()
    table = read_table(args.input)
    mlflow.set_tracking_uri(args.tracking_uri or settings.TRACKING_URI)  # where models:/ and runs:/ are found
    with _tracking(args) as log:
        started = time.perf_counter()
        result = _answer(args, table, batch_settings, console)
        seconds = time.perf_counter() - started
        if metric is not None:
            result, totals = _score(table, result, metric, args, seconds, log)
        else:
            totals = summary(result, seconds)
            if log is not None:
                log(totals)
        write_table(result, args.output)
    return totals


def _answer(args: argparse.Namespace, table: Any, batch_settings: Any, console: Console) -> Any:
    """The job's rows with a progress bar: rows in process, tasks on Spark."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        if args.spark:
            return _on_spark(args, table, batch_settings, bar)
        from dspy_rlm.serving.batch import run_batch

        task = bar.add_task("rows (in process)", total=len(table))
        return run_batch(args.model, table, batch_settings,
                         progress=lambda done, total: bar.update(task, completed=done, total=total))


def _on_spark(args: argparse.Namespace, table: Any, batch_settings: Any, bar: Progress) -> Any:
    from pyspark.sql import SparkSession

    from dspy_rlm.serving.spark import run_on_spark, spark_session

    task = bar.add_task(f"Spark tasks ({args.spark}, starting)", total=None)
    running = SparkSession.getActiveSession()  # in a notebook or a test: use it, and leave it running
    spark = running or spark_session(args.spark)
    try:
        bar.update(task, description=f"Spark tasks ({args.spark})")
        result = run_on_spark(spark, args.model, table, batch_settings, partitions=args.partitions,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
        total = bar.tasks[0].total or 1  # 1 when no progress was seen (a single task)
        bar.update(task, completed=total, total=total)
        return result
    finally:
        if running is None:
            spark.stop()


def _score(table: Any, result: Any, metric: Any, args: argparse.Namespace, seconds: float,
           log: Callable | None) -> tuple[Any, dict[str, float]]:
    """The result with its `score` column, and the totals (logged to the run when there is one)."""
    from dspy_rlm.serving.batch import load_program_model, model_outputs
    from dspy_rlm.serving.evaluate import aggregate, log_evaluation, score_rows

    model = load_program_model(args.model)
    inputs = list(model.unwrap_python_model().program.signature.input_fields)
    scored = score_rows(table, result, metric, outputs=model_outputs(model), inputs=inputs)
    return scored, log_evaluation(scored, seconds=seconds) if log is not None else aggregate(scored, seconds)


@contextlib.contextmanager
def _tracking(args: argparse.Namespace) -> Iterator[Callable[[dict[str, float]], None] | None]:
    """The job's MLflow run, yielding its `log_metrics` (None with `--tracking-uri ''`); sets `args.run_id`."""
    if not args.tracking_uri:
        yield None
        return
    import mlflow

    from dspy_rlm.observability.runs import tracked_run
    from dspy_rlm.observability.tracking import setup_tracking

    # Autolog traces each row's call in this process; Spark's workers do not trace.
    setup_tracking(args.tracking_uri, args.experiment, autolog=not args.spark)
    with tracked_run("batch", tags={"dspy_rlm.job": "batch"}) as run:
        args.run_id = run.info.run_id
        limits = {name: getattr(args, name) for name in ("max_iters", "max_llm_calls", "max_time", "max_tokens",
                                                         "max_cost", "max_concurrency")}
        mlflow.log_params({"model_uri": args.model, "input": args.input, "output": args.output,
                           "spark": args.spark or "in process", "metric": args.metric or "", "on_limit": args.on_limit,
                           **{name: value for name, value in limits.items() if value is not None}})
        yield mlflow.log_metrics


def _metric(spec: str) -> Any:
    """A task family's metric by name, or `module:function`."""
    if ":" in spec:
        from dspy_rlm.lms.names import load_object

        return load_object(spec)
    from dspy_rlm.programs.families import get_family

    return get_family(spec).metric


def print_totals(totals: dict[str, Any], args: argparse.Namespace) -> None:
    """The job's totals on stdout, and where the output and the MLflow run are."""
    from dspy_rlm.observability.report import print_figures

    shown = dict(totals)
    shown["output"] = args.output
    if getattr(args, "run_id", None):
        shown["MLflow run"] = f"{args.run_id} in {args.tracking_uri}"
    print_figures(f"dspy-rlm batch: {args.model}", shown)
