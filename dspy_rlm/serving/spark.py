"""Batch inference on Spark: a logged RLM program as `mlflow.pyfunc.spark_udf`, one row per task.

    spark = spark_session("local[2]")                                     # or "spark://host:7077"
    result = run_on_spark(spark, "models:/m-123", table, BatchSettings(max_iters=8))
    spark.stop()

The UDF returns the same record per row as the in-process batch (`dspy_rlm.serving.rows`):
outputs, usage, seconds, worker, error. It runs with `env_manager="local"`: each Python
worker uses this environment (so dspy-rlm must be installed on every Spark worker), loads the
model once (MLflow's model cache per worker process), and loads the sandbox factory from the
disk cache once, on its first row (the `warm` column says which rows paid it).

pyspark is an extra: `pip install 'dspy-rlm[spark]'` (pyspark 4 needs Java 17 or newer).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import pandas as pd

from dspy_rlm.serving.batch import Progress, checked_inputs, joined, load_program_model, model_outputs
from dspy_rlm.serving.rows import BatchSettings, record_columns, spark_schema

ROW_ID = "__dspy_rlm_row"
# Rows per Spark task. In local mode MLflow's UDF loads the model once per task (about 0.1-0.5 s), so a
# task should hold many rows; a few tasks per worker still balance the load and let progress move.
ROWS_PER_PARTITION = 20
ROWS_PER_BATCH = 4  # rows per Arrow batch (one `predict` call each): a row's record comes back soon


def require_pyspark() -> Any:
    """The `pyspark` module, or an ImportError that names the extra to install."""
    try:
        import pyspark
        import pyspark.sql  # noqa: F401
    except ImportError as missing:
        raise ImportError("running a batch on Spark needs the spark extra: pip install 'dspy-rlm[spark]' "
                          "(pyspark, with Java 17 or newer on the machine)") from missing
    return pyspark


def spark_session(master: str = "local[2]", *, app_name: str = "dspy-rlm-batch", driver_memory: str = "1g",
                  config: dict[str, str] | None = None) -> Any:
    """A quiet, small Spark session whose Python workers run this interpreter.

    `master` is `local[N]` (N worker threads, each with its own Python worker process) or a cluster
    URL such as `spark://host:7077` (its workers need dspy-rlm installed at the same Python path)."""
    require_pyspark()
    from pyspark.sql import SparkSession

    # Workers must run this Python (pyspark refuses another minor version). Local mode reads the
    # variables, not spark.pyspark.python; a value already set is the user's choice.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {
        "spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable,
        "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": "4", "spark.python.worker.reuse": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(ROWS_PER_BATCH),
        **({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
           if master.startswith("local") else {}),
        **(config or {}),
    }
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def rlm_udf(spark: Any, model_uri: str, outputs: list[str], settings: BatchSettings | None = None) -> Any:
    """`mlflow.pyfunc.spark_udf` for a logged RLM program, returning the batch record as a struct."""
    import mlflow

    settings = settings or BatchSettings()
    return mlflow.pyfunc.spark_udf(spark, model_uri, result_type=spark_schema(outputs), env_manager="local",
                                   params=settings.as_params())


def run_on_spark(spark: Any, model_uri: str, table: pd.DataFrame, settings: BatchSettings | None = None, *,
                 partitions: int | None = None, progress: Progress | None = None) -> pd.DataFrame:
    """Answer every row of `table` on Spark; return its columns plus each row's record, in row order.

    `partitions` (default: one per `ROWS_PER_PARTITION` rows) are the tasks Spark hands its workers;
    `progress(done, total)` is called as they finish (in partitions, not rows)."""
    from pyspark.sql import functions as F

    model = load_program_model(model_uri)
    inputs, outputs = checked_inputs(model, table), model_outputs(model)
    udf = rlm_udf(spark, model_uri, outputs, settings)
    frame = table[inputs].reset_index(drop=True).assign(**{ROW_ID: range(len(table))})
    partitions = partitions or max(1, -(-len(frame) // ROWS_PER_PARTITION))
    answered = (spark.createDataFrame(frame).repartition(partitions)
                .withColumn("record", udf(F.struct(*[F.col(name) for name in inputs])))
                .select(ROW_ID, "record.*"))
    with _watching(spark, progress, partitions):
        records = answered.toPandas().sort_values(ROW_ID).drop(columns=[ROW_ID])
    return joined(table, records.reindex(columns=record_columns(outputs)))


class _watching:
    """Report finished tasks of the UDF's stage (the one with `partitions` tasks) to `progress` from a
    thread while the block runs; the count only goes up (a finished stage leaves the tracker's active list)."""

    def __init__(self, spark: Any, progress: Progress | None, partitions: int, every: float = 0.25):
        self.tracker, self.progress, self.partitions, self.every = spark.sparkContext.statusTracker(), progress, \
            partitions, every
        self.done = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="dspy-rlm-spark-progress", daemon=True)

    def __enter__(self) -> _watching:
        if self.progress is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        # The stage may finish between two polls (a fast job): the block returning means every task did.
        if self.progress is not None and exc[0] is None and self.done < self.partitions:
            self.done = self.partitions
            self.progress(self.done, self.partitions)

    def _poll(self) -> None:
        while not self.stop.wait(self.every):
            stages = [self.tracker.getStageInfo(s) for s in self.tracker.getActiveStageIds()]
            done = [s.numCompletedTasks for s in stages if s is not None and s.numTasks == self.partitions]
            if done and max(done) > self.done:
                self.done = max(done)
                self.progress(self.done, self.partitions)
