"""Per-call budgets and usage accounting.

One `CallBudget` and one `UsageLedger` exist per RLM call. Sub-queries run on
several host threads at once, so both are guarded by a lock.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from collections.abc import Iterable, Mapping
from typing import Any, Iterator

from dspy.utils.usage_tracker import UsageTracker, track_usage

from dspy_rlm.core.limits import estimate_cost
from dspy_rlm.errors import BudgetExceeded


class CallBudget:
    """A ceiling on sub-LLM calls shared by every sub-query of one RLM call."""

    def __init__(self, limit: int):
        self.limit = limit
        self.refusals = 0
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    @property
    def remaining(self) -> int:
        return max(self.limit - self._used, 0)

    def reserve(self, n: int = 1) -> None:
        """Take `n` calls from the budget, all or none."""
        with self._lock:
            if self._used + n > self.limit:
                self.refusals += 1
                raise BudgetExceeded(
                    f"sub-LLM call budget exhausted: {self._used} of {self.limit} calls used, "
                    f"{n} more requested. Aggregate what you already have in Python and call SUBMIT(...)."
                )
            self._used += n


class UsageLedger:
    """Counts root and sub-model calls, tokens where the LM reports them, and time."""

    ROLES = ("root", "sub")

    def __init__(self) -> None:
        self._calls = {role: 0 for role in self.ROLES}
        self._trackers = {role: UsageTracker() for role in self.ROLES}
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self.sandbox_seconds = 0.0

    @contextmanager
    def track(self, role: str) -> Iterator[None]:
        """Count one call of `role` and collect the tokens its LM reports.

        `track_usage` nests: what it records rolls up into any tracker the user
        opened (for example `dspy.configure(track_usage=True)`), so ours adds to
        DSPy's usage rather than hiding it.
        """
        with self._lock:
            self._calls[role] += 1
        with track_usage() as tracker:
            yield
        with self._lock:
            for lm, entries in tracker.usage_data.items():
                self._trackers[role].usage_data[lm].extend(entries)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: calls and tokens per role and per model, and wall-clock seconds."""
        with self._lock:
            by_role = {role: self._trackers[role].get_total_tokens() for role in self.ROLES}
            calls = dict(self._calls)
        by_model: dict[str, dict[str, int]] = {}
        role_tokens = {role: _zero_tokens() for role in self.ROLES}
        for role, per_lm in by_role.items():
            for lm, usage in per_lm.items():
                add_counts(by_model.setdefault(lm, _zero_tokens()), usage, only=_TOKEN_KEYS)
                add_counts(role_tokens[role], usage, only=_TOKEN_KEYS)
        costs = [estimate_cost(lm, t["prompt_tokens"], t["completion_tokens"]) for lm, t in by_model.items()]
        known = [c for c in costs if c is not None]
        return {
            "root_calls": calls["root"],
            "sub_calls": calls["sub"],
            "root_tokens": role_tokens["root"],
            "sub_tokens": role_tokens["sub"],
            "total_tokens": sum(t["total_tokens"] for t in role_tokens.values()),
            "by_model": by_model,
            # Estimated from token counts at published prices; None when no model's price is known.
            "cost_usd": round(sum(known), 6) if known else None,
            "sandbox_seconds": round(self.sandbox_seconds, 4),
            "seconds": round(time.perf_counter() - self._started, 4),
        }


_TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _zero_tokens() -> dict[str, int]:
    return dict.fromkeys(_TOKEN_KEYS, 0)


def add_counts(totals: dict[str, int], counts: Mapping[str, Any], only: Iterable[str] | None = None) -> dict[str, int]:
    """Add the whole-number counts in `counts` to `totals` key by key (only the keys `only` names);
    missing, None and non-numeric values count as nothing. Returns `totals`."""
    for key in (counts if only is None else only):
        value = counts.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            totals[key] = totals.get(key, 0) + int(value)
    return totals
