"""`RLMRun`: the state of one RLM call.

Everything that changes during a call (the sandbox session, the budget, the
usage ledger, the trajectory) lives here, never on the module, so one `RLM`
instance serves many threads and coroutines at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable

import dspy

from dspy_rlm.budget import CallBudget, UsageLedger
from dspy_rlm.outputs import OutputError, parse_submission, termination_code
from dspy_rlm.repl import CodeProblem, Step, extract_code, format_history, format_variables
from dspy_rlm.sandbox import Sandbox
from dspy_rlm.subqueries import SubQueries
from dspy_rlm.tools import tool_function
from dspy_rlm.tracing import set_outputs, span

if TYPE_CHECKING:
    from dspy_rlm.rlm import RLM

logger = logging.getLogger("dspy_rlm")


class RLMRun:
    """One call of an `RLM`: opens a sandbox, executes steps, builds the result."""

    def __init__(self, rlm: RLM, inputs: dict[str, Any], loop: asyncio.AbstractEventLoop | None = None):
        self.rlm = rlm
        self.inputs = inputs
        self.loop = loop
        self.budget = CallBudget(rlm.max_llm_calls)
        self.ledger = UsageLedger()
        self.sub_queries = SubQueries(
            rlm.sub_query, rlm.sub_lm, self.budget, self.ledger,
            max_prompt_chars=rlm.max_prompt_chars, max_concurrency=rlm.max_concurrency, loop=loop,
        )
        self.steps: list[Step] = []
        self.sandbox: Sandbox | None = None

    def open(self) -> None:
        functions = dict(self.sub_queries.functions())
        for name, tool in self.rlm.tools.items():
            functions[name] = tool_function(tool, self._run_coroutine)
        self.sandbox = Sandbox(
            self.inputs,
            functions,
            limits=self.rlm.sandbox_limits,
            setup_code=termination_code(list(self.rlm.signature.output_fields)),
            max_output_chars=self.rlm.max_output_chars,
        )

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()

    def code_inputs(self, iteration: int) -> dict[str, str]:
        """The inputs of `generate_code` for this iteration."""
        return {
            "variables_info": self.variables_info(),
            "repl_history": format_history(self.steps, self.rlm.max_output_chars),
            "iteration": f"{iteration}/{self.rlm.max_iters}; sub-model calls left: {self.budget.remaining}",
        }

    def variables_info(self) -> str:
        descs = {name: _field_desc(field) for name, field in self.rlm.signature.input_fields.items()}
        created = self.sandbox.variables if self.sandbox is not None else []
        return format_variables(self.inputs, descs, created)

    def execute(self, iteration: int, reasoning: str, raw_code: str | None) -> dict[str, Any] | None:
        """Run one step; return the validated outputs when the code finished the run."""
        started = time.perf_counter()
        try:
            code = extract_code(raw_code)
        except CodeProblem as problem:
            self._record(iteration, reasoning, raw_code or "", str(problem), "no_code", started)
            return None
        with span("rlm.execute_code", "TOOL", {"code": code}) as active:
            result = self.sandbox.run(code)
            set_outputs(active, {"output": result.observation, "error": result.error, "seconds": result.seconds})
        self.ledger.sandbox_seconds += result.seconds
        output, outputs = result.observation, None
        if result.submitted:
            try:
                outputs = parse_submission(result.submission, self.rlm.signature.output_fields)
            except OutputError as problem:
                output = f"{output}\n{problem}" if result.stdout or result.stderr else str(problem)
        self._record(iteration, reasoning, code, output, result.error_kind, started)
        return outputs

    def record_failure(self, iteration: int, message: str) -> None:
        """Record a step whose code could not even be generated (for example an unparseable answer)."""
        self._record(iteration, "", "", message, "generation", time.perf_counter())

    def prediction(self, outputs: dict[str, Any], final_reasoning: str) -> dspy.Prediction:
        return dspy.Prediction(
            **outputs,
            trajectory=[step.model_dump() for step in self.steps],
            final_reasoning=final_reasoning,
            usage=self.ledger.summary(),
        )

    def _record(self, iteration: int, reasoning: str, code: str, output: str, error: str | None, started: float) -> None:
        step = Step(
            iteration=iteration, reasoning=reasoning or "", code=code, output=output, error=error,
            seconds=round(time.perf_counter() - started, 4), sub_queries=self.sub_queries.take_records(),
        )
        self.steps.append(step)
        if self.rlm.verbose:
            logger.info("RLM step %d (%s s)\n--- code ---\n%s\n--- output ---\n%s", iteration, step.seconds, code, output)

    def _run_coroutine(self, coroutine: Awaitable[Any]) -> Any:
        if self.loop is not None:
            return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()
        return asyncio.run(coroutine)

    def __enter__(self) -> "RLMRun":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _field_desc(field: Any) -> str:
    desc = (field.json_schema_extra or {}).get("desc", "")
    return "" if not desc or desc.startswith("${") else desc
