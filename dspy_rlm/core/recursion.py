"""`rlm_query` and `rlm_query_batched`: child RLM runs started from sandbox code.

With `RLM(..., max_depth=2)` or more, model code may hand a sub-task to a child run:

    answer = rlm_query("Which clause limits liability?", context=contract_text)

The child is a run of its own on the host (`RLMRun`), with its own sandbox session,
its inputs (`prompt`, and `context` if given) mounted once at its start, and the
same predictors as its parent, called with the child task's signature (so their demos,
LMs and optimizers' traces cover every depth). It ends with `SUBMIT(answer=...)`;
that answer is what `rlm_query` returns. At `max_depth`, `rlm_query` is a plain
sub-query (prompt and context to the sub-model), as in the RLM paper.

Every run of the tree draws on one `RunTree` (budget, usage, deadline, error
streak), and the depth is the host's number: nothing a guest does can raise it.
A child's model calls count against `max_llm_calls`, and a child must end within
its parent's step time (it is a host call of that step).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import dspy

from dspy_rlm.core.budget import BudgetShare
from dspy_rlm.core.events import child_event
from dspy_rlm.core.limits import Deadline, submit_daemon
from dspy_rlm.core.records import ChildRecord
from dspy_rlm.core.secrets import error_text
from dspy_rlm.core.signatures import build_code_signature, build_extract_signature
from dspy_rlm.core.steps import run_steps
from dspy_rlm.core.subqueries import slot_error
from dspy_rlm.core.tools import function_docs
from dspy_rlm.errors import RLMError
from dspy_rlm.observability.tracing import set_outputs, span
from dspy_rlm.sandbox.hostcalls import remaining as host_call_remaining

if TYPE_CHECKING:
    from dspy_rlm.core.config import RunConfig

CHILD_INSTRUCTIONS = ("This is a sub-run: another run's code handed you the request in `prompt`, with its "
                      "data in `context` when it gave one. Answer the request. The sub-model budget is shared with "
                      "the whole call, other sub-runs included: search with code where you can, and read text in a "
                      "few large chunks with `llm_query_batched`.")


@functools.cache
def child_task(with_context: bool) -> type[dspy.Signature]:
    """The task of a child run: `prompt[, context] -> answer: str`."""
    fields: dict[str, Any] = {"prompt": (str, dspy.InputField(desc="The request to answer"))}
    if with_context:
        fields["context"] = (Any, dspy.InputField(desc="The data passed with the request"))
    fields["answer"] = (str, dspy.OutputField(desc="The answer to the request, as text"))
    return dspy.Signature(fields, CHILD_INSTRUCTIONS)


def child_config(parent: RunConfig, with_context: bool, recursion: bool = True) -> RunConfig:
    """A child run's configuration: the parent's, for the child task (same predictors, limits and tools);
    `recursion=False` for a child at the depth limit, whose instructions then do not offer child runs."""
    task = child_task(with_context)
    docs = function_docs(parent.tools, recursion=recursion, sub_models=list(parent.sub_lms))
    return parent.following(signature=task, code_signature=build_code_signature(task, tool_docs=docs),
                            extract_signature=build_extract_signature(task), validate=None)


def plain_prompt(prompt: str, context: Any) -> str:
    """What a sub-model is asked when `rlm_query` is called at the depth limit."""
    if context is None:
        return prompt
    text = context if isinstance(context, str) else json.dumps(context, ensure_ascii=False, default=str)
    return f"{prompt}\n\nContext:\n{text}"


class Recursion:
    """The `rlm_query*` host functions of one run at `parent.depth`.

    `parent` is the `RLMRun` whose code calls them; `make_run` builds a child run (the `RLMRun`
    class: passed in, as the run module imports this one)."""

    def __init__(self, parent: Any, make_run: Callable[..., Any]):
        self.parent = parent
        self.make_run = make_run
        self.depth = parent.depth
        self.tree = parent.tree
        self._configs: dict[bool, RunConfig] = {}
        self._records: list[tuple[float, ChildRecord]] = []  # (when it started, its record)
        self._lock = threading.Lock()

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"rlm_query": self.query, "rlm_query_batched": self.batched}

    def take_records(self) -> list[ChildRecord]:
        """The child runs finished since the last call (one step's worth), in the order they started."""
        with self._lock:
            records, self._records = self._records, []
        return [record for _, record in sorted(records, key=lambda pair: pair[0])]

    @property
    def at_limit(self) -> bool:
        return self.depth >= self.tree.max_depth

    def query(self, prompt: str, context: Any = None) -> str:
        """A child run's answer to `prompt` (a plain sub-query at the depth limit)."""
        _check_prompt(prompt, "rlm_query")
        if self.at_limit:
            return self.parent.sub_queries.query(plain_prompt(prompt, context), where="rlm_query")
        return self._child(prompt, context, time.perf_counter())

    def batched(self, prompts: list[str], contexts: list[Any] | None = None) -> list[str]:
        """Child runs for many prompts at once (up to `max_concurrency` together); failed slots hold "[ERROR] ..."."""
        if not isinstance(prompts, list):
            raise TypeError(f"rlm_query_batched expects a list of strings, got {type(prompts).__name__}")
        if contexts is not None and (not isinstance(contexts, list) or len(contexts) != len(prompts)):
            raise ValueError(f"rlm_query_batched: contexts must be a list as long as prompts ({len(prompts)}), "
                             f"got {type(contexts).__name__}" + (f" of {len(contexts)}" if isinstance(contexts, list) else ""))
        for index, prompt in enumerate(prompts):
            _check_prompt(prompt, f"rlm_query_batched prompt #{index}")
        contexts = contexts if contexts is not None else [None] * len(prompts)
        if self.at_limit:
            return self.parent.sub_queries.batched([plain_prompt(p, c) for p, c in zip(prompts, contexts)],
                                                   where="rlm_query_batched")
        gate = threading.Semaphore(self.parent.config.max_concurrency)
        futures = [submit_daemon(self._slot, p, c, time.perf_counter(), name="rlm-child", gate=gate)
                   for p, c in zip(prompts, contexts)]
        wait = host_call_remaining()
        ends = None if wait is None else time.monotonic() + wait  # one bound for the batch, not one per slot
        return [_slot_result(future, ends) for future in futures]

    def _slot(self, prompt: str, context: Any, started: float) -> str:
        try:
            return self._child(prompt, context, started)
        except Exception as error:
            return slot_error(error)

    def _child(self, prompt: str, context: Any, started: float) -> str:
        if self.parent.budget.remaining == 0:  # a child needs calls: refused as a sub-query is (and counted)
            self.parent.budget.reserve(1)
        depth = self.depth + 1
        config = self._config(context is not None)
        inputs = {"prompt": prompt, **({"context": context} if context is not None else {})}
        record = ChildRecord(depth=depth, prompt_chars=len(prompt), context_chars=_chars(context))
        with child_event(prompt, depth) as event, span("rlm.child", "CHAIN", {"depth": depth, "prompt": prompt}) as active:
            share = BudgetShare(self.parent.budget, self.parent.config.max_child_llm_calls)
            run = self.make_run(config, inputs, tree=self.tree, depth=depth, deadline=self._child_deadline(),
                                budget=share, tool_loop=self.parent.tool_loop)
            try:
                with self._live_slot(depth), run:
                    prediction = run_steps(run)
            except RLMError as error:
                self._keep(record, error=error_text(error), trajectory=error.trajectory,
                           limit=getattr(error, "limit", None), started=started)
                raise
            except Exception as error:
                self._keep(record, error=error_text(error), trajectory=run.trajectory(), started=started)
                raise
            answer = prediction.get("answer")
            if answer is None:  # it ended at a limit without an answer: say so, not "null"
                problem = f"the child run ended at its {prediction.get('limit')} limit without an answer"
                self._keep(record, error=problem, trajectory=prediction.trajectory, limit=prediction.get("limit"),
                           started=started)
                raise RuntimeError(problem)
            answer = answer if isinstance(answer, str) else json.dumps(answer, default=str)
            self._keep(record, answer=answer, trajectory=prediction.trajectory, limit=prediction.get("limit"),
                       started=started)
            event.outputs = answer
            set_outputs(active, {"answer": answer, "steps": len(prediction.trajectory), "limit": prediction.get("limit")})
        return answer

    def _config(self, with_context: bool) -> RunConfig:
        if with_context not in self._configs:
            deeper = self.depth + 1 < self.tree.max_depth  # can the child start children of its own?
            self._configs[with_context] = child_config(self.parent.config, with_context, recursion=deeper)
        return self._configs[with_context]

    def _child_deadline(self) -> Deadline:
        """The tree's deadline, shortened to what is left of the parent's step (the host call's bound)."""
        left = [s for s in (self.tree.deadline.remaining(), host_call_remaining(0.0)) if s is not None]
        return Deadline(min(left)) if left else Deadline(None)

    def _live_slot(self, depth: int) -> Any:
        return _Slot(self.tree.sandbox_slots(depth), self._child_deadline().remaining())

    def _keep(self, record: ChildRecord, *, started: float, **values: Any) -> None:
        values = {key: value for key, value in values.items() if value is not None}
        kept = record.model_copy(update={**values, "seconds": round(time.perf_counter() - started, 4)})
        with self._lock:
            self._records.append((started, kept))


class _Slot:
    """One live child sandbox of a depth, taken for the child's run and given back after it."""

    def __init__(self, gate: threading.BoundedSemaphore, wait_s: float | None):
        self.gate, self.wait_s = gate, wait_s

    def __enter__(self) -> None:
        if not self.gate.acquire(timeout=self.wait_s):
            raise TimeoutError("no child sandbox came free in the step's time (max_live_sandboxes are all in use)")

    def __exit__(self, *exc: Any) -> None:
        self.gate.release()


def _slot_result(future: Any, ends: float | None) -> str:
    try:
        return future.result(timeout=None if ends is None else max(ends - time.monotonic(), 0.0))
    except Exception as error:  # the step's time ran out before this child finished
        future.cancel()
        return slot_error(TimeoutError(f"the child run did not finish in the step's time: {error_text(error)}"))


def _check_prompt(prompt: Any, where: str) -> None:
    if not isinstance(prompt, str):
        raise TypeError(f"{where} must be a string, got {type(prompt).__name__}; build the prompt text with an f-string")
    if not prompt.strip():
        raise ValueError(f"{where} is empty; say what the child run must find or answer")


def _chars(context: Any) -> int | None:
    if context is None:
        return None
    return len(context) if isinstance(context, str) else len(json.dumps(context, default=str))
