"""`ModelCalls`: how one run calls its own predictors (`generate_code`, `extract`, `compact`).

Every such call is bounded by the run's deadline (never a hang past `max_time`),
counted in the tree's usage ledger under the run's depth, given the local-endpoint
token cap (`core/local_models`), and named in MLflow traces after its predictor. A
child run (`core/recursion.py`) also takes each call from its share of the call budget,
and calls the shared predictors with its own task's signature.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, Literal

import dspy

from dspy_rlm.core.events import named_predictor
from dspy_rlm.core.limits import Deadline, submit_daemon
from dspy_rlm.core.local_models import token_cap_config
from dspy_rlm.core.streaming import on_stream_thread

if TYPE_CHECKING:
    from dspy_rlm.core.config import RunConfig
    from dspy_rlm.core.tree import RunTree

PredictorName = Literal["generate_code", "extract", "compact"]


class DeadlineReached(Exception):
    """The call's wall-clock deadline passed while waiting on the model."""


class ModelCalls:
    """The predictor calls of one run at `depth` of `tree` (see the module docstring)."""

    def __init__(self, config: RunConfig, tree: RunTree, budget: Any, deadline: Deadline, depth: int,
                 loop: asyncio.AbstractEventLoop | None):
        self.config, self.tree, self.budget, self.deadline = config, tree, budget, deadline
        self.depth, self.loop = depth, loop

    def call(self, name: PredictorName, **inputs: Any) -> dspy.Prediction:
        """Call the predictor `name` with `inputs`; `DeadlineReached` if the deadline passes first."""
        predictor = self._predictor(name)
        with self._counted(name):
            return self._bounded(predictor, **inputs, **self._options(name, predictor))

    async def acall(self, name: PredictorName, **inputs: Any) -> dspy.Prediction:
        predictor = self._predictor(name)
        with self._counted(name):
            return await self._abounded(predictor.acall(**inputs, **self._options(name, predictor)))

    def root_lm(self) -> Any:
        """The LM `generate_code` calls (its own, or the configured one)."""
        return self.config.generate_code.lm or dspy.settings.lm

    def _predictor(self, name: PredictorName) -> dspy.Predict:
        predictor = getattr(self.config, name)
        if predictor is None:
            raise ValueError(f"this RLM has no {name} predictor")
        return predictor

    @contextlib.contextmanager
    def _counted(self, name: PredictorName) -> Iterator[None]:
        if self.depth > 1:  # a child's model calls are sub-calls of the tree: they spend its budget
            self.budget.reserve(1)
        with self.tree.ledger.track("root", self.depth), named_predictor(self._predictor(name), name):
            yield

    def _options(self, name: PredictorName, predictor: dspy.Predict) -> dict[str, Any]:
        """Per-call options: a child task's signature (its extract without the root task's demos), the token cap."""
        options: dict[str, Any] = {}
        if name == "generate_code" and self.config.code_signature is not None:
            options["signature"] = self.config.code_signature
        if name == "extract" and self.config.extract_signature is not None:
            options.update(signature=self.config.extract_signature, demos=[])  # demos name the root's outputs
        config = token_cap_config(predictor.lm or dspy.settings.lm)
        if config:
            options["config"] = config
        return options

    def _bounded(self, predictor: Callable[..., Any], **inputs: Any) -> Any:
        """Call a predictor, giving up (not hanging) when the deadline passes."""
        left = self.deadline.remaining()
        if self.loop is not None:  # a streamed call: DSPy sends its chunks from anyio's threads only
            try:
                return on_stream_thread(self.loop, predictor, timeout_s=left, **inputs)
            except TimeoutError:
                raise DeadlineReached(f"the call's {self.deadline.seconds:g} s deadline passed") from None
        if left is None:
            return predictor(**inputs)
        future = submit_daemon(predictor, **inputs)
        try:
            return future.result(timeout=left)
        except FutureTimeout:
            raise DeadlineReached(f"the call's {self.deadline.seconds:g} s deadline passed") from None

    async def _abounded(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout=self.deadline.remaining())
        except asyncio.TimeoutError:
            raise DeadlineReached(f"the call's {self.deadline.seconds:g} s deadline passed") from None
