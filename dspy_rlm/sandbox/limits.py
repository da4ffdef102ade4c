"""Resource limits for one sandbox session."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from dspy_rlm import settings

__all__ = ["SandboxLimits"]


class SandboxLimits(BaseModel):
    """Limits applied to every step run in a `Sandbox`.

    - `step_timeout_s`: wall-clock budget of one step, time spent in host functions
      included: a host call still running when the step's time is up is abandoned
      (it runs on, unobserved, on its own thread) and the step is stopped. Size it to
      cover the slowest step you expect, sub-LLM calls included.
    - `memory_bytes`: cap on the guest's memory (wasm32 tops out at 4 GiB).
    - `callback_timeout_s`: cap on one host function call, within the step's time;
      defaults to `step_timeout_s`. A call past it is abandoned and the guest gets an
      error it can handle (the step goes on).
    - `max_callbacks_per_step`: host function calls allowed in one step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    step_timeout_s: float = settings.STEP_TIMEOUT_S
    memory_bytes: int = settings.MEMORY_MB * 2**20
    callback_timeout_s: float = None  # type: ignore[assignment]  # filled in from step_timeout_s
    max_callbacks_per_step: int = 10_000

    @model_validator(mode="before")
    @classmethod
    def _callback_cap_defaults_to_the_step(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("callback_timeout_s") is None:
            data = {**data, "callback_timeout_s": data.get("step_timeout_s", settings.STEP_TIMEOUT_S)}
        return data

    @field_validator("step_timeout_s", "callback_timeout_s")
    @classmethod
    def _positive_seconds(cls, value: float, info) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"{info.field_name} must be a finite number of seconds > 0, got {value!r}; "
                f"pass e.g. SandboxLimits({info.field_name}=60.0)"
            )
        return value

    @field_validator("memory_bytes")
    @classmethod
    def _memory(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(
                f"memory_bytes must be > 0, got {value!r}; pass a byte count such as "
                "SandboxLimits(memory_bytes=2 * 1024**3)"
            )
        if value > 4 * 1024**3:
            raise ValueError(
                f"memory_bytes={value} is above the 4 GiB a wasm32 guest can address; "
                "pass at most 4 * 1024**3"
            )
        return value

    @field_validator("max_callbacks_per_step")
    @classmethod
    def _callbacks(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(
                f"max_callbacks_per_step must be > 0, got {value!r}; "
                "pass e.g. SandboxLimits(max_callbacks_per_step=10_000)"
            )
        return value
