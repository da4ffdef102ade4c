"""Evaluation at scale: score a batch job's records with a DSPy metric, row by row, and log it to MLflow.

    result = run_on_spark(spark, model_uri, table)         # or run_batch(model_uri, table)
    scored = score_rows(table, result, family.metric, outputs=["answer"])
    with mlflow.start_run():
        log_evaluation(scored, seconds=elapsed)            # per-row table + aggregate metrics

The batch path answers the rows (in process or on Spark); scoring is cheap and runs here, on the
driver, so any Python metric works (`metric(gold: dspy.Example, pred: dspy.Prediction) -> float`,
or a `dspy.Prediction(score=...)`). A row that ended in an error is scored on its partial answer
(usually 0), and counted among the errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import dspy
import pandas as pd

from dspy_rlm.observability.tracking import as_float
from dspy_rlm.serving.batch import summary
from dspy_rlm.serving.rows import decode_outputs, record_columns

SCORE_COLUMN = "score"
Metric = Callable[..., Any]


def score_rows(table: pd.DataFrame, result: pd.DataFrame, metric: Metric, *, outputs: list[str],
               inputs: list[str] | None = None) -> pd.DataFrame:
    """`result` with a `score` column: `metric(gold, pred)` per row, where `gold` is the row of `table`
    (its gold columns included; JSON text in a gold column is decoded) and `pred` the row's outputs. The two
    frames are in the same row order; `inputs` (the program's input columns) are passed through as they are."""
    if len(table) != len(result):
        raise ValueError(f"the input table has {len(table)} rows but the result has {len(result)}; "
                         "score the result of a batch over that same table")
    columns = record_columns(outputs)
    gold_rows = table.reset_index(drop=True).to_dict(orient="records")
    records = result[columns].to_dict(orient="records")
    scores = []
    for gold_row, record in zip(gold_rows, records):
        gold = dspy.Example(**{k: v if k in (inputs or ()) else _decoded(v) for k, v in gold_row.items()})
        gold = gold.with_inputs(*inputs) if inputs else gold
        pred = dspy.Prediction(**decode_outputs(record, outputs), usage={"calls": record.get("calls")})
        try:
            scores.append(round(as_float(metric(gold, pred)), 6))
        except Exception as error:  # noqa: BLE001  (say which row the metric failed on)
            raise ValueError(f"the metric failed on row {len(scores)}: {type(error).__name__}: {error}") from error
    return result.assign(**{SCORE_COLUMN: scores})


def _decoded(value: Any) -> Any:
    """A gold cell: JSON text of an object or a list (how csv and jsonl files carry them) as that value."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def aggregate(scored: pd.DataFrame, seconds: float) -> dict[str, float]:
    """The job's totals (`batch.summary`) with the mean score over all rows and over the rows without error."""
    totals = summary(scored, seconds)
    answered = scored[scored["error"].fillna("") == ""]
    totals["score_mean"] = round(float(scored[SCORE_COLUMN].mean()), 6) if len(scored) else 0.0
    totals["score_mean_answered"] = round(float(answered[SCORE_COLUMN].mean()), 6) if len(answered) else 0.0
    return totals


def log_evaluation(scored: pd.DataFrame, *, seconds: float, table_name: str = "eval_rows.json",
                   max_text_chars: int = 2000) -> dict[str, float]:
    """Log the per-row results (a table artifact, long texts clipped) and the aggregate metrics to the
    active MLflow run; return the aggregate."""
    import mlflow

    totals = aggregate(scored, seconds)
    mlflow.log_metrics(totals)
    mlflow.log_table(_clipped(scored, max_text_chars), artifact_file=table_name)
    return totals


def _clipped(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Text cells cut to `limit` characters (a context can be megabytes; the table is for reading)."""
    def clip(value: Any) -> Any:
        return value[:limit] + f"... [{len(value) - limit:,} more characters]" if isinstance(value, str) and \
            len(value) > limit else value
    return frame.apply(lambda column: column.map(clip) if column.dtype == object else column)
