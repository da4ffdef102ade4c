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
from collections.abc import Mapping
from typing import Any, Callable, Iterator

import dspy

from dspy_rlm.core.budget import CallBudget, UsageLedger
from dspy_rlm.errors import BudgetExceeded
from dspy_rlm.core.local_models import token_cap_config
from dspy_rlm.core.limits import Deadline, submit_daemon
from dspy_rlm.core.lm_errors import is_configuration_error
from dspy_rlm.core.secrets import error_text
from dspy_rlm.core.records import SubQueryRecord
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
        sub_lms: Mapping[str, Any] | None = None,
        depth: int = 1,
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
        self.sub_lms = dict(sub_lms or {})  # named sub-models: llm_query(prompt, model=name)
        self.depth = depth  # of the run these calls belong to, for the usage ledger
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

    def query(self, prompt: str, model: str | None = None, *, where: str = "llm_query") -> str:
        """Ask the sub-model (or the named one of `sub_lms`) one prompt; `where` names the function in errors."""
        self._check_prompt(prompt, where)
        self._check_model(model, where)
        self.budget.reserve(1)
        return self._ask(prompt, model)

    def batched(self, prompts: list[str], model: str | None = None, *, where: str = "llm_query_batched") -> list[str]:
        """Ask many prompts concurrently; a failed slot holds an "[ERROR] ..." string."""
        if not isinstance(prompts, list):
            raise TypeError(f"{where} expects a list of strings, got {type(prompts).__name__}")
        for index, prompt in enumerate(prompts):
            self._check_prompt(prompt, f"{where} prompt #{index}")
        self._check_model(model, where)
        if not prompts:
            return []
        self.budget.reserve(len(prompts))
        with batch_event(prompts) as event:  # callbacks see the batch; MLflow's makes its span
            if self.loop is not None:
                future = asyncio.run_coroutine_threadsafe(self._abatched(prompts, model), self.loop)
                answers = self._wait(future)
            else:
                answers = self._threaded_batch(prompts, model)
            event.outputs = answers
        return answers

    def _threaded_batch(self, prompts: list[str], model: str | None) -> list[str]:
        # A daemon thread per slot (the budget caps how many), at most max_concurrency at work: slots a
        # deadline abandons must not hold up process exit, as a ThreadPoolExecutor's workers would.
        # Each slot runs in a copy of this context, so its spans nest under this batch.
        gate = threading.Semaphore(self.max_concurrency)
        futures = [submit_daemon(self._ask_slot, p, model, name=_SLOT, gate=gate) for p in prompts]
        return [self._slot_result(future) for future in futures]

    def _slot_result(self, future: Any) -> str:
        try:
            return self._wait(future)
        except TimeoutError as exc:
            return slot_error(exc)

    def _ask_slot(self, prompt: str, model: str | None) -> str:
        if self.deadline.passed:  # a slot that got its turn too late
            return slot_error(TimeoutError(f"the call's {self.deadline.seconds:g} s deadline passed"))
        try:
            return self._ask_now(prompt, model)  # the batch already bounds each slot by the deadline
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

    def _ask(self, prompt: str, model: str | None = None) -> str:
        if self.loop is not None:
            return self._wait(asyncio.run_coroutine_threadsafe(self._aask(prompt, model), self.loop))
        if self.deadline.ends is None:
            return self._ask_now(prompt, model)
        return self._wait(submit_daemon(self._ask_now, prompt, model, name=_SLOT))

    def _ask_now(self, prompt: str, model: str | None = None) -> str:
        with self._recorded(prompt, model) as answer, named_predictor(self.predictor, "sub_query"):
            answer.append(self.predictor(prompt=prompt, **self._call_config()).response)
        return answer[0]

    async def _aask(self, prompt: str, model: str | None = None) -> str:
        with self._recorded(prompt, model) as answer, named_predictor(self.predictor, "sub_query"):
            answer.append((await self.predictor.acall(prompt=prompt, **self._call_config())).response)
        return answer[0]

    def _call_config(self) -> dict[str, Any]:
        # Read inside the LM context: the sub-model is `self.lm` or the one configured for this call.
        config = token_cap_config(self.predictor.lm or dspy.settings.lm)
        return {"config": config} if config else {}

    @contextlib.contextmanager
    def _recorded(self, prompt: str, model: str | None = None) -> Iterator[list[str]]:
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
            with (sub_query_event(prompt) as event, self.ledger.track("sub", self.depth, model),
                  self._lm_context(model)):
                yield answer
                event.outputs = answer[0] if answer else None
        except Exception as exc:
            error = error_text(exc)
            if self.unusable is None and is_configuration_error(exc):
                self.unusable = exc
            raise
        finally:
            self._record(prompt, answer[0] if answer else "", started, error, model)

    async def _abatched(self, prompts: list[str], model: str | None) -> list[str]:
        gate = asyncio.Semaphore(self.max_concurrency)

        async def slot(prompt: str) -> str:
            async with gate:
                try:
                    return await self._aask(prompt, model)
                except Exception as exc:
                    return slot_error(exc)

        return list(await asyncio.gather(*(slot(p) for p in prompts)))

    def _lm_context(self, model: str | None) -> contextlib.AbstractContextManager:
        lm = self.sub_lms[model] if model is not None else self.lm
        return dspy.context(lm=lm) if lm is not None else contextlib.nullcontext()

    def _check_model(self, model: Any, where: str) -> None:
        """A `model=` that names one of `sub_lms` (or None, the default sub-model)."""
        if model is None or (isinstance(model, str) and model in self.sub_lms):
            return
        if not self.sub_lms:
            raise ValueError(f"{where}(..., model={model!r}): this RLM has no named sub-models; call {where} "
                             "without model=, or build the RLM with sub_lms={'name': dspy.LM(...)}")
        raise ValueError(f"{where}(..., model={model!r}): unknown sub-model; this RLM's sub-models are "
                         f"{', '.join(repr(name) for name in sorted(self.sub_lms))}")

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

    def _record(self, prompt: str, response: str, started: float, error: str | None, model: str | None) -> None:
        record = SubQueryRecord(
            prompt_chars=len(prompt),
            response_chars=len(response or ""),
            seconds=round(time.perf_counter() - started, 4),
            error=error,
            model=model,
        )
        with self._lock:
            self._records.append(record)


def slot_error(error: BaseException) -> str:
    """What a failed slot of `llm_query_batched` holds (scrubbed of secrets, like every host error text)."""
    return f"[ERROR] {error_text(error)}"
