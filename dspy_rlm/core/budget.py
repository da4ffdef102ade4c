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
    """A ceiling on sub-LLM calls shared by every sub-query of one RLM call (and of its child runs)."""

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


class BudgetShare(CallBudget):
    """A child run's share of its parent's budget: at most `limit` calls of its own (None: no cap of its
    own), each also taken from the parent's budget, so the whole tree stays within one ceiling.

    A runaway child (one sub-query per line of a long text) then ends at its own cap instead of
    starving its siblings; `remaining` is what the child may still spend."""

    def __init__(self, parent: CallBudget, limit: int | None):
        super().__init__(limit)  # type: ignore[arg-type]  (None: only the parent's ceiling)
        self.parent = parent

    @property
    def remaining(self) -> int:
        own = self.parent.remaining if self.limit is None else max(self.limit - self._used, 0)
        return min(own, self.parent.remaining)

    def reserve(self, n: int = 1) -> None:
        """Take `n` calls from this share and from the parent, all or none."""
        with self._lock:
            if self.limit is not None and self._used + n > self.limit:
                self.refusals += 1
                raise BudgetExceeded(
                    f"this sub-run's share of the call budget is used up: {self._used} of {self.limit} calls "
                    f"(max_child_llm_calls), {n} more requested. Aggregate what you have and call SUBMIT(...).")
            try:
                self.parent.reserve(n)
            except BudgetExceeded:
                self.refusals += 1
                raise
            self._used += n


class UsageLedger:
    """Counts root and sub-model calls, tokens where the LM reports them, and time.

    One ledger serves a whole call tree (`core/tree.py`): each call is counted under its role,
    the depth of the run that made it, and for a named sub-model (`sub_lms`) its name, so the
    summary has totals and, when there is more than one depth or a named sub-model, a breakdown."""

    ROLES = ("root", "sub")

    def __init__(self) -> None:
        self._calls: dict[tuple[str, int, str | None], int] = {}
        self._trackers: dict[tuple[str, int, str | None], UsageTracker] = {}
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self.sandbox_seconds = 0.0

    @contextmanager
    def track(self, role: str, depth: int = 1, sub_model: str | None = None) -> Iterator[None]:
        """Count one call of `role` (at `depth`, to the named sub-model) and collect the tokens its LM reports.

        `track_usage` nests: what it records rolls up into any tracker the user
        opened (for example `dspy.configure(track_usage=True)`), so ours adds to
        DSPy's usage rather than hiding it.
        """
        key = (role, depth, sub_model)
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
        with track_usage() as tracker:
            yield
        with self._lock:
            kept = self._trackers.setdefault(key, UsageTracker())
            for lm, entries in tracker.usage_data.items():
                kept.usage_data[lm].extend(entries)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: calls and tokens per role and per model, and wall-clock seconds;
        `by_depth` and `by_sub_model` when the call had children or named sub-models."""
        with self._lock:
            tokens = {key: tracker.get_total_tokens() for key, tracker in self._trackers.items()}
            calls = dict(self._calls)
        by_model: dict[str, dict[str, int]] = {}
        for per_lm in tokens.values():
            for lm, usage in per_lm.items():
                add_counts(by_model.setdefault(lm, _zero_tokens()), usage, only=_TOKEN_KEYS)
        summary = {
            **_role_counts(calls, tokens, lambda key: True),
            "by_model": by_model,
            # Estimated from token counts at published prices; None when no model's price is known.
            "cost_usd": _cost(by_model),
            "sandbox_seconds": round(self.sandbox_seconds, 4),
            "seconds": round(time.perf_counter() - self._started, 4),
        }
        depths = sorted({depth for _, depth, _ in calls})
        if depths != [1] and depths:
            summary["by_depth"] = {str(d): _role_counts(calls, tokens, lambda key, d=d: key[1] == d) for d in depths}
        names = sorted({name for _, _, name in calls if name is not None})
        if names:
            summary["by_sub_model"] = {name: _sub_model_counts(calls, tokens, name) for name in names}
        return summary


Key = tuple[str, int, "str | None"]


def _role_counts(calls: Mapping[Key, int], tokens: Mapping[Key, Mapping[str, Any]], keep: Any) -> dict[str, Any]:
    """Calls and tokens per role (and in all) of the keys `keep` admits."""
    counted: dict[str, Any] = {}
    total = 0
    for role in UsageLedger.ROLES:
        role_tokens = _zero_tokens()
        for key, per_lm in tokens.items():
            if key[0] == role and keep(key):
                for usage in per_lm.values():
                    add_counts(role_tokens, usage, only=_TOKEN_KEYS)
        counted[f"{role}_calls"] = sum(n for key, n in calls.items() if key[0] == role and keep(key))
        counted[f"{role}_tokens"] = role_tokens
        total += role_tokens["total_tokens"]
    counted["total_tokens"] = total
    return counted


def _sub_model_counts(calls: Mapping[Key, int], tokens: Mapping[Key, Mapping[str, Any]], name: str) -> dict[str, Any]:
    counts = _zero_tokens()
    for key, per_lm in tokens.items():
        if key[2] == name:
            for usage in per_lm.values():
                add_counts(counts, usage, only=_TOKEN_KEYS)
    return {"calls": sum(n for key, n in calls.items() if key[2] == name), **counts}


def _cost(by_model: Mapping[str, Mapping[str, int]]) -> float | None:
    costs = [estimate_cost(lm, t["prompt_tokens"], t["completion_tokens"]) for lm, t in by_model.items()]
    known = [c for c in costs if c is not None]
    return round(sum(known), 6) if known else None


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
