"""`RLM`: a Recursive Language Model as a DSPy module.

The inputs live as variables in a sandboxed Python REPL. Each iteration the
root model writes code (`generate_code`), the code runs and may ask a
sub-model about pieces of the inputs (`sub_query`), and the run ends when the
code calls SUBMIT / FINAL / FINAL_VAR. If the iterations run out, `extract`
reads the history and produces the outputs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any, Callable, Literal

import dspy
from dspy.signatures.signature import ensure_signature
from dspy.utils.exceptions import LMNotConfiguredError

from dspy_rlm import settings
from dspy_rlm.core.compaction import CompactHistory, CompactionPolicy
from dspy_rlm.core.config import RunConfig
from dspy_rlm.core.sessions import RLMSession
from dspy_rlm.core.limits import RunLimits, in_daemon_thread
from dspy_rlm.core.predictors import Predict, check_program_state, task_record, unpicklable_parts
from dspy_rlm.core.run import RLMRun
from dspy_rlm.core.steps import run_steps
from dspy_rlm.core.approval import Policy, check_policy
from dspy_rlm.core.solver import SOLVED
from dspy_rlm.library import CodeLibrary
from dspy_rlm.core.streaming import astream_submitted, stream_loop, stream_submitted
from dspy_rlm.sandbox import IsolatedSandbox, Sandbox, SandboxFactory, SandboxLimits, check_factory
from dspy_rlm.core.signatures import SubQuery, build_code_signature, build_extract_signature
from dspy_rlm.core.tools import RESERVED_RESULT_NAMES, function_docs, is_reserved, normalize_tools
from dspy_rlm.observability.tracing import set_outputs, span

class RLM(dspy.Module):
    """Answer over inputs far larger than a context window by writing code against them.

    Args:
        signature: the task, e.g. `"context, query -> answer"` or a Signature class.
        max_iters: most code-writing iterations before `extract` answers from the history.
        max_llm_calls: sub-model calls (`llm_query*`) allowed per call.
        max_output_chars: characters of each step's output shown to the model (head and tail).
        verbose: log each step's code and output.
        tools: host functions the code may call (functions or `dspy.Tool`s).
        sub_lm: LM for sub-queries; defaults to the configured LM. A model name (`"openai/gpt-4o-mini"`)
            is made `dspy.LM(name)`, its key read from the environment. A sub-model that cannot be
            used (no or a rejected key, an unknown model) ends the call with `LMFailure`.
        interpreter_factory: `dspy.RLM`'s way to choose where code runs; refused with a pointer to
            `sandbox_factory` (this module runs code through the `CodeSandbox` protocol instead).
        sandbox_factory: builds the sandbox of each call (see `dspy_rlm.sandbox.CodeSandbox`);
            default: the eryx `Sandbox`, or `IsolatedSandbox` with `isolate_process=True`.
        step_timeout: seconds one step may run.
        max_memory_mb: memory cap of the sandbox.
        isolate_process: run the sandbox in a child process. It starts about 1 s slower per call, but
            guest code that aborts the wasm runtime (data nested thousands deep, on pyeryx 0.11)
            ends only that process: the step reports a crash and a new one takes over.
        max_concurrency: sub-queries of one `llm_query_batched` run at once.
        max_prompt_chars: longest prompt one sub-query accepts.
        max_time, max_tokens, max_cost, max_consecutive_errors: global limits of one call
            (seconds, tokens, US dollars, failed steps in a row); None means unlimited.
        on_limit: how a call ends at a limit (iterations included): "extract" outputs from the
            history (one more model call, skipped for time, token and cost limits), "return"
            the best answer so far, or "raise" `LimitExceeded`.
        library: a `CodeLibrary` (or its folder): its functions are defined in every sandbox session of a
            call and listed in the prompt; its `solve.py`, if any, runs first and ends the call without a
            root-model call when its outputs validate (otherwise the loop starts, shown the error).
        approve: who allows each call of a tool marked `dspy_rlm.Tool(fn, side_effects=True)`: "deny"
            (default), "allow", "ask" (a terminal prompt) or `fn(request) -> bool | str` (see core/approval).
        max_depth: 1 (the default) for a flat run; 2 or more gives the code `rlm_query(prompt, context=None)`
            and `rlm_query_batched(prompts, contexts=None)`, which start child runs in sandboxes of their
            own, sharing this call's limits (see `core/recursion.py`); at `max_depth` they are sub-queries.
        max_live_sandboxes: child sandboxes alive at once at each depth (memory stays bounded).
        max_child_llm_calls: calls one child run may spend of the call's `max_llm_calls` (its model calls,
            sub-queries and its own children's); None lets a child spend whatever the tree has left.
        sub_lms: named sub-models, `{"fast": lm, "strong": lm}`, for `llm_query(prompt, model="fast")`.
        validate: `validate(outputs) -> str | None`, run on the host on each submission that fits the
            signature; a message sends it back to the model as the step's output, as a type error does.
        compact_at, context_window: summarize older steps (the `compact` predictor) when the history
            would pass `compact_at` (a share, e.g. 0.5) of the root model's window of `context_window`
            tokens (default: from litellm, else 128,000); the full text stays in `full_history`.
    """

    def __init__(
        self,
        signature: type[dspy.Signature] | str,
        max_iters: int = settings.MAX_ITERS,
        max_llm_calls: int = settings.MAX_LLM_CALLS,
        max_output_chars: int = settings.MAX_OUTPUT_CHARS,
        verbose: bool = False,
        tools: list[Callable] | None = None,
        sub_lm: dspy.BaseLM | str | None = None,
        interpreter_factory: Callable | None = None,
        *,
        sandbox_factory: SandboxFactory | None = None,
        step_timeout: float = settings.STEP_TIMEOUT_S,
        max_memory_mb: int = settings.MEMORY_MB,
        isolate_process: bool = False,
        max_concurrency: int = settings.MAX_CONCURRENCY,
        max_prompt_chars: int = settings.MAX_PROMPT_CHARS,
        max_time: float | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        max_consecutive_errors: int | None = None,
        on_limit: Literal["raise", "extract", "return"] = "extract",
        library: CodeLibrary | str | os.PathLike | None = None,
        approve: Policy = "deny",
        max_depth: int = 1,
        max_live_sandboxes: int = settings.MAX_LIVE_SANDBOXES,
        max_child_llm_calls: int | None = None,
        sub_lms: Mapping[str, dspy.BaseLM | str] | None = None,
        validate: Callable[[dict[str, Any]], str | None] | None = None,
        compact_at: float | None = None,
        context_window: int | None = None,
    ):
        super().__init__()
        self.signature = _task_signature(signature)
        _check_positive(max_iters=max_iters, max_output_chars=max_output_chars, max_concurrency=max_concurrency,
                        max_prompt_chars=max_prompt_chars, max_depth=max_depth, max_live_sandboxes=max_live_sandboxes)
        if max_child_llm_calls is not None:
            _check_positive(max_child_llm_calls=max_child_llm_calls)
        if validate is not None and not callable(validate):
            raise TypeError(f"validate must be a function outputs -> str | None, got {type(validate).__name__}")
        if max_llm_calls < 0:
            raise ValueError(f"max_llm_calls must be 0 or more, got {max_llm_calls}")
        _check_where_code_runs(interpreter_factory, sandbox_factory, isolate_process)
        self.max_iters = max_iters
        self.max_llm_calls = max_llm_calls
        self.max_output_chars = max_output_chars
        self.max_prompt_chars = max_prompt_chars
        self.max_concurrency = max_concurrency
        self.verbose = verbose
        self.sub_lm = sub_lm = _sub_model(sub_lm)
        self.sub_lms = _named_sub_models(sub_lms)
        self.max_depth = max_depth
        self.validate = validate
        self.tools = normalize_tools(tools)
        self.isolate_process = isolate_process
        self.sandbox_limits = SandboxLimits(step_timeout_s=step_timeout, memory_bytes=max_memory_mb * 2**20)
        self.run_limits = RunLimits(max_time=max_time, max_tokens=max_tokens, max_cost=max_cost,
                                    max_consecutive_errors=max_consecutive_errors, on_limit=on_limit)
        _check_names(self.signature, self.tools)
        self.library = CodeLibrary.coerce(library)

        self.sandbox_factory = check_factory(sandbox_factory or (IsolatedSandbox if isolate_process else Sandbox))

        task = task_record(self.signature, self.tools)  # what the saved text of these predictors names
        docs = function_docs(self.tools, recursion=max_depth > 1, sub_models=list(self.sub_lms))
        self.generate_code = Predict(build_code_signature(self.signature, tool_docs=docs), task=task)
        self.sub_query = dspy.Predict(SubQuery)
        self.extract = Predict(build_extract_signature(self.signature), task=task)
        compaction = CompactionPolicy(compact_at, context_window) if compact_at is not None else None
        if compaction is not None:  # a predictor only when used: states saved without it still load
            self.compact = dspy.Predict(CompactHistory)
        self._config = RunConfig(
            signature=self.signature, generate_code=self.generate_code, sub_query=self.sub_query,
            extract=self.extract, sub_lm=sub_lm, tools=self.tools, sandbox_factory=self.sandbox_factory,
            sandbox_limits=self.sandbox_limits, limits=self.run_limits, max_iters=max_iters,
            max_llm_calls=max_llm_calls, max_output_chars=max_output_chars, max_prompt_chars=max_prompt_chars,
            max_concurrency=max_concurrency, verbose=verbose, library=self.library, approve=check_policy(approve),
            max_depth=max_depth,
            max_live_sandboxes=max_live_sandboxes, max_child_llm_calls=max_child_llm_calls, sub_lms=self.sub_lms,
            validate=validate,
            compact=getattr(self, "compact", None), compaction=compaction,
        )

    @property
    def config(self) -> RunConfig:
        """The frozen configuration a call runs with (following any predictor or sub_lm swapped in since)."""
        self._config = self._config.following(generate_code=self.generate_code, sub_query=self.sub_query,
                                              extract=self.extract, sub_lm=_sub_model(self.sub_lm),
                                              verbose=self.verbose, library=self.library,
                                              compact=getattr(self, "compact", None))
        return self._config

    def session(self) -> RLMSession:
        """Calls that share one sandbox, as turns of a conversation (see `core/sessions.py`):

            with rlm.session() as chat:
                chat(context=a, query="...")
                chat(context=b, query="... and now?")   # earlier inputs: context_1, query_1
        """
        return RLMSession(self)

    def forward(self, *, sandbox_factory: SandboxFactory | None = None, session: RLMSession | None = None,
                **inputs: Any) -> dspy.Prediction:
        """Answer from `inputs` (the signature's input fields); `sandbox_factory=` runs this call elsewhere
        (`session=` is how `rlm.session()` passes its sandbox)."""
        self._check_call(inputs)
        config = self._call_config(sandbox_factory)
        with RLMRun(config, inputs, loop=stream_loop(), session=session) as run:
            solved = run.try_solver()  # the library's solve.py, if any: no root-model call when it answers
            if solved is not None:
                return run.prediction(solved, SOLVED)
            # Steps until SUBMIT or a limit (the same loop as a child run's); a submission is streamed first.
            return run_steps(run, on_submitted=lambda outputs: stream_submitted(config.extract, outputs))

    async def aforward(self, *, sandbox_factory: SandboxFactory | None = None, session: RLMSession | None = None,
                       **inputs: Any) -> dspy.Prediction:
        self._check_call(inputs)
        config = self._call_config(sandbox_factory)
        run = RLMRun(config, inputs, loop=asyncio.get_running_loop(), session=session)
        await in_daemon_thread(run.open)
        try:
            solved = await in_daemon_thread(run.try_solver)
            if solved is not None:
                return run.prediction(solved, SOLVED)
            for iteration in range(1, config.max_iters + 1):
                if run.limit_reached():
                    break
                with span(f"rlm.iteration.{iteration}", "CHAIN", {"iteration": iteration}) as active:
                    action = await run.agenerate(iteration)
                    outputs = await in_daemon_thread(run.execute, iteration, action)
                    set_outputs(active, run.step_view(iteration, submitted=outputs is not None))
                if outputs is not None:
                    await astream_submitted(config.extract, outputs)
                    return run.prediction(outputs, action.reasoning)
            return await run.afinish()
        finally:
            await in_daemon_thread(run.close)

    def save(self, path: str, save_program: bool = False, modules_to_serialize: list | None = None) -> None:
        """DSPy's `save`; a whole program that cannot be pickled names the part that cannot."""
        try:
            super().save(path, save_program=save_program, modules_to_serialize=modules_to_serialize)
        except RuntimeError as error:
            parts = {"sub_lm": self.sub_lm, "sandbox_factory": self.sandbox_factory,
                     **{f"tool {name!r}": tool for name, tool in self.tools.items()},
                     **{f"{name}.lm": predictor.lm for name, predictor in self.named_predictors()}}
            culprits = unpicklable_parts(parts) if save_program else []
            if not culprits:
                raise
            raise RuntimeError(f"This RLM cannot be saved as a whole program: {'; '.join(culprits)} cannot be "
                               "pickled. Save its state instead (rlm.save('program.json'), save_program=False) and "
                               "build the RLM in code before loading it, or make that part picklable.") from error

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        """DSPy's state, plus the code library's files and content hash when there is one."""
        state = super().dump_state(json_mode=json_mode)
        if self.library is not None:
            state["library"] = self.library.to_state()
        return state

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> None:
        """DSPy's `load_state`, refusing by name a state of another program or task (see `core.predictors`)."""
        if hasattr(self, "compact") and "compact" not in state:  # saved before compaction was on: keep it untuned
            state = {**state, "compact": self.compact.dump_state()}
        check_program_state(state, [name for name, _ in self.named_parameters()])
        library = CodeLibrary.from_state(state["library"]) if "library" in state else None  # hash checked first
        super().load_state(state, **kwargs)
        if library is not None:
            self.library = library

    def _call_config(self, sandbox_factory: SandboxFactory | None) -> RunConfig:
        """This call's configuration: the module's, with a call-time sandbox factory if one was given."""
        config = self.config
        return config if sandbox_factory is None else config.following(sandbox_factory=check_factory(sandbox_factory))

    def _check_call(self, inputs: dict[str, Any]) -> None:
        if "interpreter_factory" in inputs:  # dspy.RLM's call option: None means no override; others are refused
            _check_where_code_runs(inputs.pop("interpreter_factory"), None, False)
        expected = set(self.signature.input_fields)
        missing = sorted(expected - set(inputs))
        unexpected = sorted(set(inputs) - expected)
        if unexpected:
            raise ValueError(f"Unexpected inputs {unexpected}; this RLM takes {sorted(expected)}")
        if missing:
            raise ValueError(f"Missing required inputs {missing}; this RLM takes {sorted(expected)}")
        if dspy.settings.lm is None and self.generate_code.lm is None:
            raise LMNotConfiguredError("No LM is configured: call dspy.configure(lm=dspy.LM('provider/model')) "
                                       "or set rlm.generate_code.lm before calling the RLM.")


CALL_OPTIONS = frozenset({"sandbox_factory", "interpreter_factory", "session"})  # keywords of a call that are not inputs


def _task_signature(signature: type[dspy.Signature] | str) -> type[dspy.Signature]:
    try:
        task = ensure_signature(signature)
    except Exception as error:
        raise ValueError(f"Invalid signature {signature!r}: {error}. "
                         "Write it as 'context, query -> answer' or pass a dspy.Signature class.") from error
    if not task.input_fields or not task.output_fields:
        raise ValueError(f"Signature {signature!r} needs at least one input and one output, "
                         "for example 'context, query -> answer'.")
    return task


def _check_names(task: type[dspy.Signature], tools: dict[str, Any]) -> None:
    clashing = sorted(name for name in task.input_fields if is_reserved(name))
    if clashing:
        raise ValueError(f"Input names {clashing} clash with sandbox functions; rename those inputs.")
    clashing = sorted(name for name in task.output_fields if is_reserved(name) or name in RESERVED_RESULT_NAMES)
    if clashing:
        raise ValueError(f"Output names {clashing} clash with sandbox functions or result fields "
                         f"({sorted(RESERVED_RESULT_NAMES)}); rename those outputs.")
    clashing = sorted(set(task.input_fields) & CALL_OPTIONS)
    if clashing:
        raise ValueError(f"Input names {clashing} are call options of RLM (rlm(..., sandbox_factory=...)); "
                         "rename those inputs.")
    clashing = sorted(set(task.input_fields) & set(tools))
    if clashing:
        raise ValueError(f"Input names {clashing} are also tool names; rename the inputs or the tools.")


def _check_where_code_runs(interpreter_factory: Any, sandbox_factory: Any, isolate_process: bool) -> None:
    if interpreter_factory is not None:
        raise TypeError("dspy_rlm.RLM does not take interpreter_factory: pass sandbox_factory=... (a factory of "
                        "dspy_rlm.sandbox.CodeSandbox) to choose where code runs. To run dspy.RLM on eryx, use "
                        "dspy.RLM(..., interpreter_factory=dspy_rlm.EryxInterpreter).")
    if sandbox_factory is not None and isolate_process:
        raise ValueError("give sandbox_factory or isolate_process=True, not both: the factory decides "
                         "where code runs (pass dspy_rlm.sandbox.IsolatedSandbox for a worker process)")


def _sub_model(sub_lm: Any) -> dspy.BaseLM | None:
    """`sub_lm` as an LM: a model name becomes `dspy.LM(name)`; anything else but an LM is refused."""
    if isinstance(sub_lm, str):
        return dspy.LM(sub_lm)
    if sub_lm is not None and not isinstance(sub_lm, dspy.BaseLM):
        raise TypeError(f"sub_lm must be a dspy.LM (or another dspy.BaseLM) or a model name, got "
                        f"{type(sub_lm).__name__}: write sub_lm=dspy.LM('provider/model')")
    return sub_lm


def _named_sub_models(sub_lms: Mapping[str, Any] | None) -> dict[str, dspy.BaseLM]:
    """`sub_lms` as `{name: LM}` (model names made `dspy.LM`s), each name a non-empty string."""
    if sub_lms is None:
        return {}
    if not isinstance(sub_lms, Mapping):
        raise TypeError(f"sub_lms must be a dict of names to LMs, e.g. {{'fast': dspy.LM('openai/gpt-4o-mini')}}, "
                        f"got {type(sub_lms).__name__}")
    named = {}
    for name, lm in sub_lms.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"sub_lms names must be non-empty strings (used as llm_query(..., model=name)), got {name!r}")
        named[name] = _sub_model(lm)
    return named


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
