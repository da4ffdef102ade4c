"""`llm_query` and `llm_query_batched`: sub-model calls made from sandbox code.

They run on the host, through the RLM's `sub_query` predictor, so API keys
never enter the sandbox and optimizers can tune the sub-query prompt. One
`SubQueries` object serves one RLM call; it is called from the sandbox's
worker threads, possibly many at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Iterator

import dspy

from dspy_rlm.core.budget import CallBudget, UsageLedger
from dspy_rlm.errors import BudgetExceeded
from dspy_rlm.core.local_models import token_cap_config
from dspy_rlm.core.limits import Deadline, submit_daemon
from dspy_rlm.core.lm_errors import is_configuration_error
from dspy_rlm.core.secrets import error_text
from dspy_rlm.core.transcript import SubQueryRecord
from dspy_rlm.sandbox.hostcalls import bounded as host_call_bounded
from dspy_rlm.core.events import batch_event, named_predictor, sub_query_event


_SLOT = "rlm-sub"  # name of the threads that make sub-model calls


class SubQueries:
    """The sub-query host functions of one RLM call."""

    def __init__(
        self,
        predictor: dspy.Predict,
        lm: Any,
        budget: CallBudget,
        ledger: UsageLedger,
        *,
        max_prompt_chars: int,
        max_concurrency: int,
        loop: asyncio.AbstractEventLoop | None = None,
        deadline: Deadline | None = None,
        usage_limit: Callable[[], str | None] = lambda: None,
    ):
        self.predictor = predictor
        self.lm = lm
        self.budget = budget
        self.ledger = ledger
        self.max_prompt_chars = max_prompt_chars
        self.max_concurrency = max_concurrency
        self.loop = loop
        self.deadline = deadline or Deadline(None)
        self.usage_limit = usage_limit  # why no more sub-model calls may start, or None
        self._records: list[SubQueryRecord] = []
        self.unusable: Exception | None = None  # the first error saying the sub-model is misconfigured
        self._lock = threading.Lock()

    def functions(self) -> dict[str, Callable[..., Any]]:
        """The host functions to expose in the sandbox."""
        return {"llm_query": self.query, "llm_query_batched": self.batched, "llm_batch": self.batched}

    def take_records(self) -> list[SubQueryRecord]:
        """The sub-queries made since the last call (one step's worth)."""
        with self._lock:
            records, self._records = self._records, []
        return records

    def query(self, prompt: str) -> str:
        """Ask the sub-model one prompt."""
        self._check_prompt(prompt, "llm_query")
        self.budget.reserve(1)
        return self._ask(prompt)

    def batched(self, prompts: list[str]) -> list[str]:
        """Ask many prompts concurrently; a failed slot holds an "[ERROR] ..." string."""
        if not isinstance(prompts, list):
            raise TypeError(f"llm_query_batched expects a list of strings, got {type(prompts).__name__}")
        for index, prompt in enumerate(prompts):
            self._check_prompt(prompt, f"llm_query_batched prompt #{index}")
        if not prompts:
            return []
        self.budget.reserve(len(prompts))
        with batch_event(prompts) as event:  # callbacks see the batch; MLflow's makes its span
            if self.loop is not None:
                future = asyncio.run_coroutine_threadsafe(self._abatched(prompts), self.loop)
                answers = self._wait(future)
            else:
                answers = self._threaded_batch(prompts)
            event.outputs = answers
        return answers

    def _threaded_batch(self, prompts: list[str]) -> list[str]:
        # A daemon thread per slot (the budget caps how many), at most max_concurrency at work: slots a
        # deadline abandons must not hold up process exit, as a ThreadPoolExecutor's workers would.
        # Each slot runs in a copy of this context, so its spans nest under this batch.
        gate = threading.Semaphore(self.max_concurrency)
        futures = [submit_daemon(self._ask_slot, p, name=_SLOT, gate=gate) for p in prompts]
        return [self._slot_result(future) for future in futures]

    def _slot_result(self, future: Any) -> str:
        try:
            return self._wait(future)
        except TimeoutError as exc:
            return slot_error(exc)

    def _ask_slot(self, prompt: str) -> str:
        if self.deadline.passed:  # a slot that got its turn too late
            return slot_error(TimeoutError(f"the call's {self.deadline.seconds:g} s deadline passed"))
        try:
            return self._ask_now(prompt)  # the batch already bounds each slot by the deadline
        except Exception as exc:
            return slot_error(exc)

    def _wait(self, future: Any) -> Any:
        """A future's result, but never past the call's deadline, nor (soon) after the host call this
        wait is part of was abandoned at its step's time limit; what it waited for is then cancelled."""
        try:
            return future.result(timeout=host_call_bounded(self.deadline.remaining()))
        except FutureTimeout:
            future.cancel()  # a sub-query on the event loop stops there (a thread's runs on, unobserved)
            if self.deadline.passed:
                raise TimeoutError(f"the call's {self.deadline.seconds:g} s deadline passed") from None
            raise TimeoutError("the step's time ran out, and the sub-query was abandoned") from None

    def _ask(self, prompt: str) -> str:
        if self.loop is not None:
            return self._wait(asyncio.run_coroutine_threadsafe(self._aask(prompt), self.loop))
        if self.deadline.ends is None:
            return self._ask_now(prompt)
        return self._wait(submit_daemon(self._ask_now, prompt, name=_SLOT))

    def _ask_now(self, prompt: str) -> str:
        with self._recorded(prompt) as answer, named_predictor(self.predictor, "sub_query"):
            answer.append(self.predictor(prompt=prompt, **self._call_config()).response)
        return answer[0]

    async def _aask(self, prompt: str) -> str:
        with self._recorded(prompt) as answer, named_predictor(self.predictor, "sub_query"):
            answer.append((await self.predictor.acall(prompt=prompt, **self._call_config())).response)
        return answer[0]

    def _call_config(self) -> dict[str, Any]:
        # Read inside the LM context: the sub-model is `self.lm` or the one configured for this call.
        config = token_cap_config(self.predictor.lm or dspy.settings.lm)
        return {"config": config} if config else {}

    @contextlib.contextmanager
    def _recorded(self, prompt: str) -> Iterator[list[str]]:
        """Span, usage, LM override and trajectory record around one sub-model call."""
        # Checked per call, so a step's sub-queries stop at the token or cost limit, not after the
        # step; calls already in flight (a batch) may still finish over it.
        refusal = self.usage_limit()
        if refusal is not None:
            raise BudgetExceeded(refusal)
        if self.unusable is not None:  # no more calls to a model that cannot answer; the call ends after the step
            raise RuntimeError(f"the sub-model cannot be used: {error_text(self.unusable)}")
        started, answer, error = time.perf_counter(), [], None
        try:
            with sub_query_event(prompt) as event, self.ledger.track("sub"), self._lm_context():
                yield answer
                event.outputs = answer[0] if answer else None
        except Exception as exc:
            error = error_text(exc)
            if self.unusable is None and is_configuration_error(exc):
                self.unusable = exc
            raise
        finally:
            self._record(prompt, answer[0] if answer else "", started, error)

    async def _abatched(self, prompts: list[str]) -> list[str]:
        gate = asyncio.Semaphore(self.max_concurrency)

        async def slot(prompt: str) -> str:
            async with gate:
                try:
                    return await self._aask(prompt)
                except Exception as exc:
                    return slot_error(exc)

        return list(await asyncio.gather(*(slot(p) for p in prompts)))

    def _lm_context(self) -> contextlib.AbstractContextManager:
        return dspy.context(lm=self.lm) if self.lm is not None else contextlib.nullcontext()

    def _check_prompt(self, prompt: Any, where: str) -> None:
        if not isinstance(prompt, str):
            raise TypeError(f"{where} must be a string, got {type(prompt).__name__}; build the prompt text with an f-string")
        if not prompt.strip():
            raise ValueError(f"{where} is empty; put the question and the text to read in the prompt")
        if len(prompt) > self.max_prompt_chars:
            raise ValueError(
                f"{where} is {len(prompt):,} characters, over the limit of {self.max_prompt_chars:,}; "
                "split the text into smaller chunks and use llm_query_batched"
            )
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError as bad:  # no provider can receive it: say so before the call is spent
            raise ValueError(
                f"{where} holds a lone surrogate (U+{ord(prompt[bad.start]):04X}) at character {bad.start:,}, "
                "which is not valid Unicode; repair it first: text.encode('utf-8', 'replace').decode('utf-8')"
            ) from None

    def _record(self, prompt: str, response: str, started: float, error: str | None) -> None:
        record = SubQueryRecord(
            prompt_chars=len(prompt),
            response_chars=len(response or ""),
            seconds=round(time.perf_counter() - started, 4),
            error=error,
        )
        with self._lock:
            self._records.append(record)


def slot_error(error: BaseException) -> str:
    """What a failed slot of `llm_query_batched` holds (scrubbed of secrets, like every host error text)."""
    return f"[ERROR] {error_text(error)}"
