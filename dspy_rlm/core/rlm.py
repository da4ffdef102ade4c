"""`RLM`: a Recursive Language Model as a DSPy module.

The inputs live as variables in a sandboxed Python REPL. Each iteration the
root model writes code (`generate_code`), the code runs and may ask a
sub-model about pieces of the inputs (`sub_query`), and the run ends when the
code calls SUBMIT / FINAL / FINAL_VAR. If the iterations run out, `extract`
reads the history and produces the outputs.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Literal

import dspy
from dspy.signatures.signature import ensure_signature
from dspy.utils.exceptions import LMNotConfiguredError

from dspy_rlm import settings
from dspy_rlm.core.config import RunConfig
from dspy_rlm.core.limits import RunLimits, in_daemon_thread
from dspy_rlm.core.predictors import Predict, check_program_state, task_record, unpicklable_parts
from dspy_rlm.core.run import RLMRun
from dspy_rlm.core.streaming import astream_submitted, stream_loop, stream_submitted
from dspy_rlm.sandbox import IsolatedSandbox, Sandbox, SandboxFactory, SandboxLimits, check_factory
from dspy_rlm.core.signatures import SubQuery, build_code_signature, build_extract_signature
from dspy_rlm.core.tools import RESERVED_RESULT_NAMES, is_reserved, normalize_tools, tool_docs
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
    ):
        super().__init__()
        self.signature = _task_signature(signature)
        _check_positive(max_iters=max_iters, max_output_chars=max_output_chars, max_concurrency=max_concurrency,
                        max_prompt_chars=max_prompt_chars)
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
        self.tools = normalize_tools(tools)
        self.isolate_process = isolate_process
        self.sandbox_limits = SandboxLimits(step_timeout_s=step_timeout, memory_bytes=max_memory_mb * 2**20)
        self.run_limits = RunLimits(max_time=max_time, max_tokens=max_tokens, max_cost=max_cost,
                                    max_consecutive_errors=max_consecutive_errors, on_limit=on_limit)
        _check_names(self.signature, self.tools)

        self.sandbox_factory = check_factory(sandbox_factory or (IsolatedSandbox if isolate_process else Sandbox))

        task = task_record(self.signature, self.tools)  # what the saved text of these predictors names
        self.generate_code = Predict(build_code_signature(self.signature, tool_docs=tool_docs(self.tools)), task=task)
        self.sub_query = dspy.Predict(SubQuery)
        self.extract = Predict(build_extract_signature(self.signature), task=task)
        self._config = RunConfig(
            signature=self.signature, generate_code=self.generate_code, sub_query=self.sub_query,
            extract=self.extract, sub_lm=sub_lm, tools=self.tools, sandbox_factory=self.sandbox_factory,
            sandbox_limits=self.sandbox_limits, limits=self.run_limits, max_iters=max_iters,
            max_llm_calls=max_llm_calls, max_output_chars=max_output_chars, max_prompt_chars=max_prompt_chars,
            max_concurrency=max_concurrency, verbose=verbose,
        )

    @property
    def config(self) -> RunConfig:
        """The frozen configuration a call runs with (following any predictor or sub_lm swapped in since)."""
        self._config = self._config.following(generate_code=self.generate_code, sub_query=self.sub_query,
                                              extract=self.extract, sub_lm=_sub_model(self.sub_lm),
                                              verbose=self.verbose)
        return self._config

    def forward(self, *, sandbox_factory: SandboxFactory | None = None, **inputs: Any) -> dspy.Prediction:
        """Answer from `inputs` (the signature's input fields); `sandbox_factory=` runs this call elsewhere."""
        self._check_call(inputs)
        config = self._call_config(sandbox_factory)
        with RLMRun(config, inputs, loop=stream_loop()) as run:
            for iteration in range(1, config.max_iters + 1):
                if run.limit_reached():
                    break
                with span(f"rlm.iteration.{iteration}", "CHAIN", {"iteration": iteration}) as active:
                    action = run.generate(iteration)
                    outputs = run.execute(iteration, action)
                    set_outputs(active, run.step_view(iteration, submitted=outputs is not None))
                if outputs is not None:
                    stream_submitted(config.extract, outputs)
                    return run.prediction(outputs, action.reasoning)
            return run.finish()

    async def aforward(self, *, sandbox_factory: SandboxFactory | None = None, **inputs: Any) -> dspy.Prediction:
        self._check_call(inputs)
        config = self._call_config(sandbox_factory)
        run = RLMRun(config, inputs, loop=asyncio.get_running_loop())
        await in_daemon_thread(run.open)
        try:
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

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> None:
        """DSPy's `load_state`, refusing by name a state of another program or task (see `core.predictors`)."""
        check_program_state(state, [name for name, _ in self.named_parameters()])
        super().load_state(state, **kwargs)

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


CALL_OPTIONS = frozenset({"sandbox_factory", "interpreter_factory"})  # keywords of a call that are not inputs


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


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
