"""Batch inference in process: a logged RLM program over a table, one row per task.

    settings = BatchSettings(max_iters=8, max_llm_calls=40, max_concurrency=16)
    table = read_table("tasks.parquet")                       # parquet, jsonl or csv
    result = run_batch("models:/m-123", table, settings)      # the input columns + one record per row
    write_table(result, "answers.parquet")

Each row's record (outputs, usage, seconds, error) is described in `dspy_rlm.serving.rows`; a
row that fails or hits a limit keeps its error and partial answer, and the job goes on. The
same model runs on Spark through `dspy_rlm.serving.spark`, with the same columns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from dspy_rlm.serving.rows import BatchSettings, record_columns

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
Progress = Callable[[int, int], None]  # (rows done, rows in all)


def table_format(path: str | Path) -> str:
    """`parquet`, `jsonl` or `csv`, from the file's extension; a clear error for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the format of {str(path)!r} from its extension; use .parquet, .jsonl or .csv")
    return FORMATS[suffix]


def read_table(path: str | Path) -> pd.DataFrame:
    """A parquet, jsonl or csv file as a DataFrame (text columns stay text)."""
    kind, path = table_format(path), Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no input file {str(path)!r}")
    if kind == "parquet":
        return pd.read_parquet(path)
    if kind == "jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` as parquet, jsonl or csv (by extension), whole or not at all."""
    from dspy_rlm.fileio import replacing

    kind, path = table_format(path), Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        elif kind == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def load_program_model(model_uri: str) -> Any:
    """The pyfunc model at `model_uri` (`models:/...`, `runs:/.../rlm_program`, or a local folder)."""
    import mlflow

    return mlflow.pyfunc.load_model(model_uri)


def model_outputs(model: Any) -> list[str]:
    """The signature outputs of the program a loaded pyfunc model serves."""
    program = model.unwrap_python_model().program
    return list(program.signature.output_fields)


def checked_inputs(model: Any, table: pd.DataFrame) -> list[str]:
    """The program's input columns, all of which `table` must have (a clear error names the missing ones)."""
    inputs = list(model.unwrap_python_model().program.signature.input_fields)
    absent = [name for name in inputs if name not in table.columns]
    if absent:
        raise ValueError(f"the input table has no column {', '.join(map(repr, absent))} (an input of the program); "
                         f"its columns: {list(table.columns)}")
    return inputs


def run_batch(model_uri: str | Any, table: pd.DataFrame, settings: BatchSettings | None = None, *,
              progress: Progress | None = None) -> pd.DataFrame:
    """Answer every row of `table` in this process; return its columns plus each row's record.

    `model_uri` may also be a model already loaded with `mlflow.pyfunc.load_model`. Rows run one
    after another (each row's batched sub-queries run `settings.max_concurrency` at once)."""
    settings = settings or BatchSettings()
    model = load_program_model(model_uri) if isinstance(model_uri, str) else model_uri
    columns = record_columns(model_outputs(model))
    inputs = checked_inputs(model, table)
    records: list[dict[str, Any]] = []
    for position in range(len(table)):
        records.append(model.predict(table[inputs].iloc[[position]], params=settings.as_params())[0])
        if progress is not None:
            progress(position + 1, len(table))
    return joined(table, pd.DataFrame.from_records(records, columns=columns))


def joined(table: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """The input columns beside the records; an input column named like a record column is kept as `input_<name>`."""
    inputs = table.reset_index(drop=True).rename(columns={c: f"input_{c}" for c in table.columns if c in records})
    return pd.concat([inputs, records.reset_index(drop=True)], axis=1)


def summary(result: pd.DataFrame, seconds: float) -> dict[str, float]:
    """Totals of a finished job: rows, errors, calls, tokens, cost and rows per second."""
    rows = len(result)
    errors = int((result["error"].fillna("") != "").sum()) if rows else 0
    cost = pd.to_numeric(result["cost"], errors="coerce").sum() if rows else 0.0
    return {"rows": rows, "errors": errors, "rows_with_sandbox_errors": int((result["step_errors"] > 0).sum()),
            "calls": int(result["calls"].sum()), "tokens": int(result["tokens"].sum()), "cost_usd": float(cost),
            "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds, 3) if seconds > 0 else 0.0}
