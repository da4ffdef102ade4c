"""One batch row: the settings of a job, and the flat record each row's call becomes.

A batch job (in process, or a Spark UDF) answers one task per row. Every row gives one
record, whether its call succeeded, raised or hit a limit, so nothing is lost:

- one column per signature output (a non-text value is stored as JSON; `decode_outputs` reads it
  back), holding the answer, or the call's best (partial) answer when it ended in an error (empty
  when it had none);
- usage: `root_calls`, `sub_calls`, `calls`, `tokens`, `cost` (US dollars, estimated; None when
  no model's price is known), `iterations`, `step_errors` (steps whose code raised or was stopped
  in the sandbox) and `sandbox_error` (the last such error, empty when none: kept even when the
  model recovered from it);
- `seconds` (the row's wall-clock time), `worker` (the process id) and `warm` (True when that
  process had already loaded the sandbox factory, so the row paid no start-up);
- `error`: empty for a row whose call answered, else `"<ErrorClass>: message"` (`LimitExceeded`,
  `SandboxCrash`, `LMFailure`, or the `ValueError` of an input the sandbox refused).

This module owns that format: `record_columns` lists the columns and `spark_schema` their
Spark types; `answer_row` writes a record and `decode_outputs` reads its outputs back.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import dspy

from dspy_rlm.core.secrets import error_text
from dspy_rlm.errors import RLMError
from dspy_rlm.sandbox.factory import factory_loaded

USAGE_COLUMNS = {"root_calls": "long", "sub_calls": "long", "calls": "long", "tokens": "long", "cost": "double",
                 "iterations": "long", "step_errors": "long", "sandbox_error": "string", "seconds": "double",
                 "worker": "long", "warm": "boolean", "error": "string"}
ERROR_COLUMN = "error"
# Step error kinds that mean the code raised or was stopped in the sandbox (not "no code" or a bad submission).
SANDBOX_ERRORS = ("exception", "timeout", "memory", "fuel", "callback_limit", "crash")
LIMIT_NAMES = ("max_iters", "max_llm_calls", "max_time", "max_tokens", "max_cost", "max_consecutive_errors")


@dataclass(frozen=True)
class BatchSettings:
    """The settings of a batch job, the same for every row: per-row limits and sub-query concurrency.

    None keeps the program's own value. `on_limit` defaults to "raise": a row that reaches a limit
    records `LimitExceeded` and its best answer so far, rather than an answer guessed by `extract`.
    """

    max_iters: int | None = None
    max_llm_calls: int | None = None
    max_time: float | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_consecutive_errors: int | None = None
    max_concurrency: int | None = None
    on_limit: Literal["raise", "extract", "return"] = "raise"

    def __post_init__(self) -> None:
        if self.on_limit not in ("raise", "extract", "return"):
            raise ValueError(f"on_limit must be 'raise', 'extract' or 'return', got {self.on_limit!r}")
        for name in (*LIMIT_NAMES, "max_concurrency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a number of 0 or more (or None: the program's own), got {value!r}")

    def rlm_kwargs(self) -> dict[str, Any]:
        """The `RLM` keyword arguments these settings override (those that are set)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def as_params(self) -> dict[str, Any]:
        """As the pyfunc model's inference params (`model.predict(frame, params=...)`, `spark_udf(params=...)`)."""
        return {"output": "rows", **self.rlm_kwargs()}

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> BatchSettings:
        """The settings in the params `as_params` wrote (MLflow fills unset ones with None)."""
        given = {k: v for k, v in (params or {}).items() if k != "output" and v is not None}
        return cls(**{k: v for k, v in given.items() if k in cls.__dataclass_fields__})


def wants_rows(params: dict[str, Any] | None) -> bool:
    """Whether the pyfunc model was asked for batch records rather than plain predictions."""
    return bool(params) and params.get("output") == "rows"


def record_columns(outputs: list[str]) -> list[str]:
    """The columns of a record, in order: the signature outputs, then usage, seconds and error."""
    return [*outputs, *USAGE_COLUMNS]


def spark_schema(outputs: list[str]) -> str:
    """The record as a Spark DDL struct (`spark_udf(result_type=...)`): outputs are strings."""
    return ", ".join([*(f"`{name}` string" for name in outputs), *(f"`{n}` {t}" for n, t in USAGE_COLUMNS.items())])


def answer_row(program: dspy.Module, row: dict[str, Any], inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    """Run `program` on one row (its `inputs` columns) and return the row's record; never raises
    for the row's own failure (a missing column, a failed call, a limit): the record says it."""
    warm = factory_loaded()
    started = time.perf_counter()
    prediction, error, partial = None, "", {}
    try:
        absent = [name for name in inputs if name not in row]
        if absent:
            raise ValueError(f"the row has no column {', '.join(map(repr, absent))} (an input of the program); "
                             f"its columns: {sorted(row)}")
        prediction = program(**{name: _cell(row[name]) for name in inputs})
    except RLMError as failure:
        error, partial = error_text(failure), failure.best_answer or {}  # scrubbed: rows reach files and MLflow
        usage, trajectory = failure.usage or {}, failure.trajectory or []
    except Exception as failure:  # noqa: BLE001  (refused inputs, a bad row, a model error: the row's, not the job's)
        error, usage, trajectory = error_text(failure), {}, []
    if prediction is not None:
        usage, trajectory = prediction.get("usage") or {}, prediction.get("trajectory") or []
        partial = {name: prediction.get(name) for name in outputs}
    return {**{name: _text(partial.get(name)) for name in outputs},
            **_usage(usage, trajectory), "seconds": round(time.perf_counter() - started, 4),
            "worker": os.getpid(), "warm": warm, "error": error}


def decode_outputs(record: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
    """A record's outputs as values again (JSON text decoded where `answer_row` encoded it)."""
    decoded = {}
    for name in outputs:
        value = record.get(name)
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        decoded[name] = value
    return decoded


def _cell(value: Any) -> Any:
    """A table cell as an input: pandas' NaN for a missing value becomes None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _text(value: Any) -> str:
    """An output as a cell: text as it is, another value as JSON, nothing (no partial answer) as ""
    (Spark's struct conversion would turn a None among strings into the text 'nan')."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _usage(usage: dict[str, Any], trajectory: list[dict[str, Any]]) -> dict[str, Any]:
    root, sub = int(usage.get("root_calls") or 0), int(usage.get("sub_calls") or 0)
    failed = [step for step in trajectory if step.get("error") in SANDBOX_ERRORS]
    return {"root_calls": root, "sub_calls": sub, "calls": root + sub, "tokens": int(usage.get("total_tokens") or 0),
            "cost": usage.get("cost_usd"), "iterations": len(trajectory), "step_errors": len(failed),
            "sandbox_error": _last_line(failed[-1]) if failed else ""}


def _last_line(step: dict[str, Any]) -> str:
    """The error line of a failed step's output (`TypeError: ...`), else its error kind."""
    lines = [line for line in str(step.get("output") or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else str(step.get("error"))
