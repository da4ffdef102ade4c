"""`RunTree`: what every run of one call shares, from the root down to its deepest child.

A call with `max_depth >= 2` is a tree of runs: the root's code starts children with
`rlm_query`, and theirs may start grandchildren. They all draw on one budget: the
sub-model call ceiling, the usage ledger (tokens and cost) and the deadline are single
objects held here, on the host. (`max_consecutive_errors` applies to each run's own
steps: concurrent siblings must not end each other.) The depth of a
run and the limit are plain numbers the host passes down; nothing in a sandbox can
see or change them (environment variables, globals and patched functions there
touch only that guest).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from dspy_rlm.core.budget import CallBudget, UsageLedger
from dspy_rlm.core.limits import Deadline


class ErrorStreak:
    """Failed steps in a row of one run (a success ends the streak)."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def record(self, failed: bool) -> None:
        with self._lock:
            self._count = self._count + 1 if failed else 0


@dataclass
class RunTree:
    """The shared limits and accounting of one call's runs (see the module docstring).

    Args:
        max_depth: the deepest run (the root is depth 1); at `max_depth`, `rlm_query` is a plain sub-query.
        max_live_sandboxes: child sandboxes alive at once at each depth. Counted per depth so that
            children waiting for grandchildren never hold the slots those grandchildren need.
    """

    max_depth: int
    budget: CallBudget
    deadline: Deadline
    max_live_sandboxes: int
    ledger: UsageLedger = field(default_factory=UsageLedger)
    _slots: dict[int, threading.BoundedSemaphore] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_call(cls, *, max_depth: int, max_llm_calls: int, max_time: float | None,
                 max_live_sandboxes: int) -> RunTree:
        """The tree of a new call: a fresh budget, ledger and deadline."""
        return cls(max_depth=max_depth, budget=CallBudget(max_llm_calls), deadline=Deadline(max_time),
                   max_live_sandboxes=max_live_sandboxes)

    def sandbox_slots(self, depth: int) -> threading.BoundedSemaphore:
        """The gate on live child sandboxes at `depth`."""
        with self._lock:
            if depth not in self._slots:
                self._slots[depth] = threading.BoundedSemaphore(self.max_live_sandboxes)
            return self._slots[depth]
