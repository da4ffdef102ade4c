"""`RLMRun`: the state of one RLM call.

Everything that changes during a call (the sandbox session, the budget, the
usage ledger, the trajectory, the deadline) lives here, never on the module,
so one `RLM` instance serves many threads and coroutines at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Literal

import dspy
from dspy.utils.exceptions import AdapterParseError, LMError
from dspy.utils.logging_utils import configure_dspy_loggers

from dspy_rlm.core.approval import ApprovalLog, gated, needs_approval
from dspy_rlm.core.budget import CallBudget
from dspy_rlm.core.compaction import HistoryCompactor
from dspy_rlm.core.config import RunConfig
from dspy_rlm.core.events import step_event
from dspy_rlm.core.limits import Deadline
from dspy_rlm.core.model_calls import DeadlineReached, ModelCalls
from dspy_rlm.core.outputs import parse_submission, termination_code, validated
from dspy_rlm.core.recursion import Recursion
from dspy_rlm.core.secrets import error_text, guarded, remember_lms, scrub, scrubbed
from dspy_rlm.core.streaming import reach_stream
from dspy_rlm.core.solver import library_section, library_setup, try_solver
from dspy_rlm.core.subqueries import SubQueries
from dspy_rlm.core.tools import tool_function
from dspy_rlm.core.transcript import Step, StepErrorKind, extract_code, format_iteration, format_variables
from dspy_rlm.core.tree import ErrorStreak, RunTree
from dspy_rlm.errors import (
    BudgetExceeded, CodeProblem, InputsNotLoaded, LimitExceeded, LimitName, LMFailure, OutputError, SandboxCrash, SandboxError,
)
from dspy_rlm.observability.tracing import fenced, set_outputs, span
from dspy_rlm.sandbox import CodeSandbox, StepResult, check_sandbox, run_awaitable

if TYPE_CHECKING:
    from dspy_rlm.core.sessions import RLMSession

__all__ = ["DeadlineReached", "EXTRACTED", "RLMRun"]

logger = logging.getLogger("dspy_rlm")
# `verbose=True` prints through a logger set up as DSPy sets up its own (INFO, to stderr, silenced by
# `dspy.disable_logging()`), so it shows without any logging configuration, as `dspy.RLM`'s does.
step_logger = logging.getLogger("dspy_rlm.steps")
configure_dspy_loggers(step_logger.name)

EXTRACTED = "Extract forced final output"
# Limits after which one more model call (extract) would not overspend.
_EXTRACTABLE = {"iterations", "sub_calls", "consecutive_errors"}


class RLMRun:
    """One call of an `RLM`: opens a sandbox, generates and executes steps, builds the result."""

    def __init__(self, config: RunConfig, inputs: dict[str, Any], loop: asyncio.AbstractEventLoop | None = None, *,
                 tree: RunTree | None = None, depth: int = 1, deadline: Deadline | None = None,
                 budget: CallBudget | None = None, session: RLMSession | None = None,
                 tool_loop: asyncio.AbstractEventLoop | None = None):
        """A root run makes its `tree`. A child (`core/recursion.py`) is given its parent's tree, its depth,
        a deadline cut to its parent's step, its share of the budget and the caller's loop for its tools.
        A session's run (`core/sessions.py`) uses the session's sandbox."""
        self.config = config
        self.inputs = session.variables(inputs) if session is not None else inputs
        self.loop = loop
        self.tool_loop = tool_loop or loop  # where async tools run: the caller's loop, for children too
        self.limits = config.limits
        self.tree = tree or RunTree.for_call(max_depth=config.max_depth, max_llm_calls=config.max_llm_calls,
                                             max_time=self.limits.max_time, max_live_sandboxes=config.max_live_sandboxes)
        self.depth, self.session = depth, session
        self.deadline = deadline or self.tree.deadline
        self.ledger = self.tree.ledger
        self.budget = budget or self.tree.budget  # a child's is its share of its parent's
        self.models = ModelCalls(config, self.tree, self.budget, self.deadline, depth, loop)
        self.sub_queries = SubQueries(
            config.sub_query, config.sub_lm, self.budget, self.ledger,
            max_prompt_chars=config.max_prompt_chars, max_concurrency=config.max_concurrency,
            loop=loop, deadline=self.deadline, usage_limit=self._usage_limit_message,
            sub_lms=config.sub_lms, depth=depth,
        )
        self.recursion = Recursion(self, make_run=type(self))
        self.history = HistoryCompactor(config.compaction, _task_text(config.signature))
        remember_lms(dspy.settings.lm, config.sub_lm, config.generate_code.lm, config.sub_query.lm, config.extract.lm,
                     *config.sub_lms.values())
        self.steps: list[Step] = []
        self.sandbox: CodeSandbox | None = None
        self.best_answer: dict | None = None
        # Failed steps in a row, of this run: concurrent siblings must not end each other's runs.
        self.errors = ErrorStreak()
        self.solver: dict[str, Any] | None = None  # set by try_solver (core/solver.py)
        self.approvals = ApprovalLog()  # decisions on side-effect tool calls, taken by each step

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> None:
        functions = dict(self.sub_queries.functions())
        if self.config.max_depth > 1:
            functions.update(self.recursion.functions())
        for name, tool in self.config.tools.items():
            functions[name] = tool_function(tool, self._run_coroutine)
            if needs_approval(tool):  # a side-effect tool: each call asks the approval policy first
                functions[name] = gated(name, functions[name], self.config.approve, self.approvals)
        functions = {name: guarded(function) for name, function in functions.items()}  # no key in guest errors
        functions = reach_stream(functions, self.loop)  # under dspy.streamify: callbacks reach the stream
        functions, library_code = library_setup(self.config.library, functions)  # the code library, if any
        factory = self.config.sandbox_factory

        def build(inputs: Any, functions: Any) -> CodeSandbox:
            return factory(inputs, functions, limits=self.config.sandbox_limits,
                           setup_code=termination_code(self.config.output_names) + library_code,
                           max_output_chars=self.config.max_output_chars)

        try:
            sandbox = build(self.inputs, functions) if self.session is None else \
                self.session.attach(self.inputs, functions, build)
        except InputsNotLoaded:  # inputs it cannot load: the caller's to fix
            raise
        except SandboxError as error:
            raise SandboxCrash(f"the sandbox could not start: {error}", **self._details()) from error
        self.sandbox = check_sandbox(sandbox, factory)

    def try_solver(self) -> dict[str, Any] | None:
        """The library solver's validated outputs, or None to run the loop (see `core/solver.py`)."""
        return try_solver(self)

    def close(self) -> None:
        if self.sandbox is not None and self.session is None:  # a session's sandbox outlives its calls
            self.sandbox.close()

    def __enter__(self) -> RLMRun:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the root model ----------------------------------------------------

    def generate(self, iteration: int) -> dspy.Prediction | None:
        """Ask `generate_code` for the next step; None if its answer was unusable."""
        try:
            self.compact_history()
            return self.models.call("generate_code", **self.code_inputs(iteration))
        except (AdapterParseError, DeadlineReached, BudgetExceeded) as problem:  # the last: a child's share
            self._generation_failed(iteration, problem)
            return None
        except LMError as error:
            raise LMFailure(f"the root model failed: {error_text(error)}", **self._details()) from scrubbed(error)

    async def agenerate(self, iteration: int) -> dspy.Prediction | None:
        try:
            await self.acompact_history()
            return await self.models.acall("generate_code", **self.code_inputs(iteration))
        except (AdapterParseError, DeadlineReached, BudgetExceeded) as problem:  # the last: a child's share
            self._generation_failed(iteration, problem)
            return None
        except LMError as error:
            raise LMFailure(f"the root model failed: {error_text(error)}", **self._details()) from scrubbed(error)

    def code_inputs(self, iteration: int) -> dict[str, str]:
        """The inputs of `generate_code` for this iteration."""
        return {
            "variables_info": self.variables_info(),
            "repl_history": self.history.text(self.steps, self.config.max_output_chars),
            "iteration": format_iteration(iteration, self.config.max_iters, self.budget.remaining,
                                          max_prompt_chars=self.config.max_prompt_chars,
                                          max_output_chars=self.config.max_output_chars),
        }

    def variables_info(self) -> str:
        created = self.sandbox.variables if self.sandbox is not None else []
        return format_variables(self.inputs, self.config.input_descriptions(), created,
                                library_section(self.config.library))

    # -- the sandbox -------------------------------------------------------

    def execute(self, iteration: int, action: dspy.Prediction | None) -> dict[str, Any] | None:
        """Run one step's code; return the validated outputs when the code finished the run.

        Callbacks see the step as `on_interpreter_execute_start/end` (see `core/events.py`)."""
        if action is None:
            return None
        with step_event(self.sandbox, iteration, action.reasoning or "", _step_code(action.code), self.depth) as event:
            outputs = self._execute(iteration, action)
            event.outputs = self.steps[-1].model_dump()
        return outputs

    def step_view(self, iteration: int, submitted: bool) -> dict[str, Any]:
        """This iteration's step as its span's outputs, code and output fenced for MLflow's Markdown view."""
        step = self.steps[-1] if self.steps and self.steps[-1].iteration == iteration else None
        if step is None:
            return {"submitted": submitted}
        return {"reasoning": step.reasoning, "code": fenced(step.code, "python"), "output": fenced(step.output),
                "error": step.error, "seconds": step.seconds, "sub_queries": len(step.sub_queries),
                **({"children": len(step.children)} if step.children else {}), "submitted": submitted}

    def _execute(self, iteration: int, action: dspy.Prediction) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            code = extract_code(action.code)
        except CodeProblem as problem:
            self._record(iteration, action.reasoning, action.code or "", str(problem), "no_code", started)
            return None
        with span("rlm.execute_code", "TOOL", {"code": fenced(code, "python")}) as active:
            result = self._run_step(iteration, action.reasoning, code, started)
            set_outputs(active, {"output": fenced(result.observation), "error": result.error,
                                 "seconds": result.seconds})
        self.ledger.sandbox_seconds += result.seconds
        output, outputs, error = result.observation, None, result.error_kind
        if error == "timeout" and self.deadline.passed:  # the step was cut short by the call's deadline
            output = f"{output}\n[the call's {self.deadline.seconds:g} s deadline (max_time) was reached]"
        if result.submitted:
            previous = self.best_answer
            self.best_answer = result.submission if isinstance(result.submission, dict) else self.best_answer
            try:
                outputs = self._accepted(parse_submission(result.submission, self.config.signature.output_fields),
                                         previous)
            except OutputError as problem:
                output, error = (f"{output}\n{problem}" if result.stdout or result.stderr else str(problem)), "output"
        self._record(iteration, action.reasoning, code, output, error, started)
        self._check_sub_model()
        return outputs

    def _check_sub_model(self) -> None:
        """End the call when a sub-query said the sub-model is misconfigured (not worth more steps)."""
        unusable = self.sub_queries.unusable
        if unusable is not None:
            raise LMFailure(f"the sub-model cannot be used (check sub_lm, or the configured LM: its model name, "
                            f"API key and api_base): {error_text(unusable)}", **self._details()) from scrubbed(unusable)

    def _run_step(self, iteration: int, reasoning: str, code: str, started: float) -> StepResult:
        try:
            return self.sandbox.run(code, timeout_s=self.deadline.bound(self.config.sandbox_limits.step_timeout_s))
        except SandboxError as error:  # it could not restart after a failed step: the call cannot go on
            self._record(iteration, reasoning, code, f"SandboxCrash: {error}", "crash", started)
            raise SandboxCrash(f"the sandbox failed and could not be restarted: {error}", **self._details()) from error

    # -- limits and the end of a call --------------------------------------

    def limit_reached(self) -> LimitName | None:
        """The first global limit this call has reached, if any."""
        limits = self.limits
        if self.deadline.passed:
            return "deadline"
        if self.depth > 1 and self.budget.remaining == 0:  # a child that cannot call its model again
            return "sub_calls"
        spent = self.usage_limit_reached()
        if spent is not None:
            return spent
        if limits.max_consecutive_errors is not None and self.errors.count >= limits.max_consecutive_errors:
            return "consecutive_errors"
        if self.budget.refusals >= 2:  # the model was told once, and asked again
            return "sub_calls"
        return None

    def _usage_limit_message(self) -> str | None:
        spent = self.usage_limit_reached()
        if spent is None:
            return None
        limit = f"token limit (max_tokens={self.limits.max_tokens:,})" if spent == "tokens" else \
            f"cost limit (max_cost=${self.limits.max_cost:g})"
        return f"this call has reached its {limit}; no more sub-queries can be made"

    def usage_limit_reached(self) -> Literal["tokens", "cost"] | None:
        """The token or cost limit, if this call's usage has reached it (sub-queries check it too)."""
        limits = self.limits
        if limits.max_tokens is None and limits.max_cost is None:
            return None  # a usage summary prices every model: only computed when a limit needs it
        usage = self.ledger.summary()
        if limits.max_tokens is not None and usage["total_tokens"] >= limits.max_tokens:
            return "tokens"
        if limits.max_cost is not None and (usage["cost_usd"] or 0.0) >= limits.max_cost:
            return "cost"
        return None

    def finish(self) -> dspy.Prediction:
        """End a call that did not SUBMIT, as `on_limit` says."""
        limit = self._ending_limit()
        if self._wants_extract(limit):
            try:
                extracted = self.models.call("extract", **self._extract_inputs())
            except (DeadlineReached, BudgetExceeded, AdapterParseError, LMError) as problem:
                return self._extract_failed(problem)
            return self.prediction(self._outputs_of(extracted), EXTRACTED, limit)
        return self.prediction(self._best_outputs(), f"Stopped at the {limit} limit", limit)

    async def afinish(self) -> dspy.Prediction:
        limit = self._ending_limit()
        if self._wants_extract(limit):
            try:
                extracted = await self.models.acall("extract", **self._extract_inputs())
            except (DeadlineReached, BudgetExceeded, AdapterParseError, LMError) as problem:
                return self._extract_failed(problem)
            return self.prediction(self._outputs_of(extracted), EXTRACTED, limit)
        return self.prediction(self._best_outputs(), f"Stopped at the {limit} limit", limit)

    def _extract_failed(self, problem: Exception) -> dspy.Prediction:
        """`extract` ran past the deadline (end as at the deadline) or failed (a typed error)."""
        if isinstance(problem, DeadlineReached):
            return self.prediction(self._best_outputs(), "Stopped at the deadline limit", "deadline")
        if isinstance(problem, BudgetExceeded):  # a child whose share ran out between the check and the call
            return self.prediction(self._best_outputs(), "Stopped at the sub_calls limit", "sub_calls")
        raise LMFailure(f"the extract step failed: {error_text(problem)}", **self._details()) from scrubbed(problem)

    def prediction(self, outputs: dict[str, Any], final_reasoning: str, limit: str | None = None) -> dspy.Prediction:
        extra = {"limit": limit} if limit is not None else {}
        if self.solver is not None:  # the library solver's record: used, or why not
            extra["solver"] = self.solver
        return dspy.Prediction(**outputs, trajectory=self.trajectory(), final_reasoning=final_reasoning,
                               usage=self.ledger.summary(), **extra)

    def trajectory(self) -> list[dict[str, Any]]:
        return [step.model_dump() for step in self.steps]

    def _ending_limit(self) -> LimitName:
        limit = self.limit_reached() or "iterations"
        if self.limits.on_limit == "raise":
            raise LimitExceeded(limit, f"the call reached its {limit} limit", **self._details())
        return limit

    def _wants_extract(self, limit: LimitName) -> bool:
        out_of_calls = self.depth > 1 and self.budget.remaining == 0  # a child's extract would be one call more
        return self.limits.on_limit == "extract" and limit in _EXTRACTABLE and not out_of_calls

    def _details(self) -> dict[str, Any]:
        return {"trajectory": self.trajectory(), "best_answer": self.best_answer, "usage": self.ledger.summary()}

    def _best_outputs(self) -> dict[str, Any]:
        best = self.best_answer or {}
        return {name: best.get(name) for name in self.config.signature.output_fields}

    def _outputs_of(self, prediction: dspy.Prediction) -> dict[str, Any]:
        return {name: prediction.get(name) for name in self.config.signature.output_fields}

    def _extract_inputs(self) -> dict[str, str]:
        return {"variables_info": self.variables_info(),
                "repl_history": self.history.text(self.steps, self.config.max_output_chars)}

    # -- helpers -----------------------------------------------------------

    def _accepted(self, outputs: dict[str, Any], previous: dict | None) -> dict[str, Any]:
        """`outputs` if the host's `validate` takes them; a rejected answer is not kept as the best one."""
        try:
            return validated(outputs, self.config.validate)
        except OutputError:
            self.best_answer = previous
            raise

    def compact_history(self) -> None:
        """Summarize older steps if the history has outgrown its share of the window (`core/compaction.py`)."""
        self.history.compact(self.models, self.sandbox, self.steps, self.config.max_output_chars)

    async def acompact_history(self) -> None:
        await self.history.acompact(self.models, self.sandbox, self.steps, self.config.max_output_chars)

    def _generation_failed(self, iteration: int, problem: Exception) -> None:
        if isinstance(problem, DeadlineReached):
            message = f"[Error] {problem} while the model was writing this step."
        elif isinstance(problem, BudgetExceeded):
            message = f"[Error] {problem}"
        else:
            message = (f"[Error] Your answer could not be parsed ({type(problem).__name__}). "
                       "Answer with the `reasoning` and `code` fields, the code in a ```python block.")
        self._record(iteration, "", "", message, "generation", time.perf_counter())

    def _record(self, iteration: int, reasoning: str, code: str, output: str, error: StepErrorKind | None,
                started: float) -> None:
        step = Step(
            iteration=iteration, reasoning=reasoning or "", code=code, output=scrub(output), error=error,
            seconds=round(time.perf_counter() - started, 4), sub_queries=self.sub_queries.take_records(),
            children=self.recursion.take_records(), approvals=self.approvals.take(),
        )
        self.steps.append(step)
        self.errors.record(failed=error is not None)
        if self.config.verbose:
            step_logger.info("RLM step %d (%s s)\n--- code ---\n%s\n--- output ---\n%s", iteration, step.seconds,
                             step.code, step.output)  # as kept: bounded (and scrubbed)

    def _run_coroutine(self, coroutine: Awaitable[Any]) -> Any:
        return run_awaitable(coroutine, self.tool_loop)


def _step_code(text: str | None) -> str:
    """The code of a step as the events show it: the extracted code, or the raw text if there is none."""
    try:
        return extract_code(text)
    except CodeProblem:
        return text or ""


def _task_text(task: type[dspy.Signature]) -> str:
    """The task as the compaction predictor is told it: its fields and instructions."""
    fields = f"{', '.join(task.input_fields)} -> {', '.join(task.output_fields)}"
    return f"{fields}. {task.instructions}" if task.instructions else fields
