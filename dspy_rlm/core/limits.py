"""Global limits of one RLM call: the limits, the deadline, prices, and abandonable calls.

Limits are enforced on the host, between and inside steps; sandbox code
cannot see or change them. When one is reached, `on_limit` decides the end:
"raise" a `LimitExceeded` (`dspy_rlm.errors`), "extract" outputs from the history with the
`extract` predictor (DSPy's behaviour when iterations run out), or "return"
the best answer known so far without another model call.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, Literal

import pydantic

from dspy_rlm.sandbox.hostcalls import submit_daemon

__all__ = ["Deadline", "RunLimits", "estimate_cost", "in_daemon_thread", "submit_daemon"]

class RunLimits(pydantic.BaseModel):
    """Per-call limits; None means unlimited.

    Args:
        max_time: wall-clock seconds for the whole call, LM calls and steps included.
        max_tokens: prompt + completion tokens of root and sub calls.
        max_cost: US dollars, estimated from token counts and the models' published
            prices (DSPy's pricing metadata); models without known prices don't count.
        max_consecutive_errors: steps in a row that failed (code error, no code, LM failure).
        on_limit: how a call ends at a limit: "raise", "extract" or "return".
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    max_time: float | None = pydantic.Field(default=None, gt=0)
    max_tokens: int | None = pydantic.Field(default=None, gt=0)
    max_cost: float | None = pydantic.Field(default=None, gt=0)
    max_consecutive_errors: int | None = pydantic.Field(default=None, gt=0)
    on_limit: Literal["raise", "extract", "return"] = "extract"


class Deadline:
    """The wall-clock end of one call (monotonic), or none."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.ends = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.ends is None else max(self.ends - time.monotonic(), 0.0)

    @property
    def passed(self) -> bool:
        return self.ends is not None and time.monotonic() >= self.ends

    def bound(self, seconds: float) -> float:
        """`seconds`, shortened to what is left of the deadline."""
        left = self.remaining()
        return seconds if left is None else min(seconds, left)


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """US dollars for these tokens at the model's published prices, or None if unknown."""
    rates = _token_rates(model)
    if rates is None:
        return None
    return prompt_tokens * rates[0] + completion_tokens * rates[1]


@functools.lru_cache(maxsize=256)
def _token_rates(model: str) -> tuple[float, float] | None:
    from dspy.clients.model_metadata import model_info, rate

    provider, _, name = model.partition("/")
    try:
        info = model_info(provider, name) if name else {}
    except Exception:  # pricing metadata is advisory; never fail a call over it
        return None
    prompt_rate, completion_rate = rate(info, "input_cost_per_token"), rate(info, "output_cost_per_token")
    if prompt_rate is None or completion_rate is None:
        return None
    return prompt_rate, completion_rate


async def in_daemon_thread(fn: Any, *args: Any, name: str = "rlm-step", **kwargs: Any) -> Any:
    """Await `fn(*args, **kwargs)`, run in this context on a daemon thread of its own.

    Not `asyncio.to_thread`: its default executor has a few threads, and a step waits on
    sub-query coroutines that need those threads too (DSPy's async LM path uses them), so
    enough concurrent `acall`s would hold them all and deadlock.
    """
    return await asyncio.wrap_future(submit_daemon(fn, *args, name=name, **kwargs))
