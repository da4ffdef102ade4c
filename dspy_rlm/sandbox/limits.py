"""Resource limits for one sandbox session."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, field_validator

from dspy_rlm import settings

__all__ = ["SandboxLimits"]


class SandboxLimits(BaseModel):
    """Limits applied to every step run in a `Sandbox`.

    - `step_timeout_s`: wall-clock budget of one step. It includes time spent
      waiting on host functions (eryx checks the deadline when a call returns,
      and no new host call starts after it), so size it to cover the slowest
      step you expect, sub-LLM calls included.
    - `memory_bytes`: cap on the guest's memory (wasm32 tops out at 4 GiB).
    - `callback_timeout_s`: cap on one host function call.
    - `max_callbacks_per_step`: host function calls allowed in one step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    step_timeout_s: float = settings.STEP_TIMEOUT_S
    memory_bytes: int = settings.MEMORY_MB * 2**20
    callback_timeout_s: float = 600.0
    max_callbacks_per_step: int = 10_000

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
