"""What a step records of the calls its code made: sub-queries and child runs.

Both are kept in the trajectory (`Step.sub_queries`, `Step.children`), never in the
model's prompt: the model sees what its code printed.
"""

from __future__ import annotations

from typing import Any

import pydantic

from dspy_rlm.sandbox import truncate_middle

RECORD_ERROR_CHARS = 1_000  # of a sub-query's or a child's error kept in its record
CHILD_ANSWER_CHARS = 2_000  # of a child's answer kept in its record (the whole answer went to the code)


class SubQueryRecord(pydantic.BaseModel):
    """One `llm_query` (or one slot of `llm_query_batched`) made during a step."""

    prompt_chars: int
    response_chars: int
    seconds: float
    error: str | None = None
    model: str | None = None  # the name given as `llm_query(..., model=name)`, if any

    @pydantic.field_validator("error")
    @classmethod
    def _bounded(cls, error: str | None) -> str | None:
        return truncate_middle(error, RECORD_ERROR_CHARS) if error else error


class ChildRecord(pydantic.BaseModel):
    """One child run started by `rlm_query` (or one slot of `rlm_query_batched`) during a step."""

    depth: int
    prompt_chars: int
    context_chars: int | None = None  # characters of the context's JSON text; None without a context
    answer: str = ""
    error: str | None = None
    limit: str | None = None  # the limit the child ended at, if any
    seconds: float = 0.0
    trajectory: list[dict[str, Any]] = pydantic.Field(default_factory=list)  # the child's own steps

    @pydantic.field_validator("error")
    @classmethod
    def _bounded_error(cls, error: str | None) -> str | None:
        return truncate_middle(error, RECORD_ERROR_CHARS) if error else error

    @pydantic.field_validator("answer")
    @classmethod
    def _bounded_answer(cls, answer: str) -> str:
        return truncate_middle(answer, CHILD_ANSWER_CHARS)
