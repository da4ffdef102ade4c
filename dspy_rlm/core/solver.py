"""The code library in a call: its code in every sandbox session, its index in the prompt, its solver first.

- `library_setup`: the library's host functions and source, added to the sandbox's setup code
  (it runs whenever a guest starts or restarts, so every session of the call has it, once).
- `library_section`: the bounded index `variables_info` shows under its heading.
- `try_solver` (stabilize/soften): with a `solve.py`, the call first runs `solve(**inputs)` in
  the sandbox. Outputs that pass the signature's types and the optional `validate` hook end the
  call with zero root-model calls. Otherwise the attempt is kept as step 0 of the trajectory, its
  error shown to the model, the loop starts as usual, and the prediction records the fallback
  (`prediction.solver == {"used": False, "error": ...}`) so the library can be revised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from dspy_rlm.core.outputs import parse_submission, validation_problem
from dspy_rlm.errors import OutputError, SandboxCrash, SandboxError
from dspy_rlm.library import SOLVER_STEP_TAG, CodeLibrary

SOLVED = "Solved by the library's solver (no root-model call)"
FALLBACK_NOTE = ("[The library's solver (solve.py) could not answer this task, so it is yours: solve it in code as "
                 "usual. The library's functions are still defined; call them where they fit.]")


def library_setup(library: CodeLibrary | None, functions: Mapping[str, Callable[..., Any]]
                  ) -> tuple[dict[str, Callable[..., Any]], str]:
    """The sandbox's host functions with the library's added, and the setup code that defines the library."""
    if library is None or not len(library):
        return dict(functions), ""
    merged = {**functions, **library.host_functions()}
    return merged, "\n\n" + library.source(merged)


def library_section(library: CodeLibrary | None) -> str:
    return library.prompt_section() if library is not None else ""


def solver_step_code(input_names: list[str]) -> str:
    """The step that runs the solver and submits what it returns."""
    arguments = ", ".join(f"{name}={name}" for name in input_names)
    return (f"{SOLVER_STEP_TAG}\n_solved = solve({arguments})\n"
            "if not isinstance(_solved, dict):\n"
            "    raise TypeError(f'solve() must return a dict of the outputs, got {type(_solved).__name__}')\n"
            "SUBMIT(**_solved)")


def try_solver(run: Any) -> dict[str, Any] | None:
    """Run the library's solver (`run` is the call's `RLMRun`); its validated outputs, or None (the fallback is recorded on the run)."""
    library = run.config.library
    if library is None or library.solver is None or run.sandbox is None:
        return None
    started = time.perf_counter()
    code = solver_step_code(list(run.config.signature.input_fields))
    try:
        result = run.sandbox.run(code, timeout_s=run.deadline.bound(run.config.sandbox_limits.step_timeout_s))
    except SandboxError as error:
        raise SandboxCrash(f"the sandbox failed while the library's solver ran: {error}",
                           trajectory=run.trajectory(), best_answer=None, usage=run.ledger.summary()) from error
    run.ledger.sandbox_seconds += result.seconds
    outputs, problem = None, result.error
    if result.submitted and not problem:
        outputs, problem = _validated(run, result.submission)
    if outputs is not None:
        run.solver = {"used": True}
        run._record(0, "The library's solver answered.", code, result.observation, None, started)
        return outputs
    problem = problem or "solve() did not submit any outputs"
    run.solver = {"used": False, "error": problem.strip()[-2_000:]}
    run._record(0, "The library's solver ran first.", code, f"{result.observation}\n{FALLBACK_NOTE}",
                    result.error_kind or "output", started)
    run.errors.record(failed=False)  # the solver's failure is not the model's: no error streak
    return None


def _validated(run: Any, submission: Any) -> tuple[dict[str, Any] | None, str | None]:
    try:
        outputs = parse_submission(submission, run.config.signature.output_fields)
    except OutputError as problem:
        return None, f"the solver's outputs do not fit the signature: {problem}"
    problem = validation_problem(outputs, getattr(run.config, "validate", None))  # a raising one: its error
    return (None, f"the solver's outputs failed validation: {problem}") if problem else (outputs, None)
