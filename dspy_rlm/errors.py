"""Every error dspy-rlm raises, in one tree. All are exported from `dspy_rlm`.

    DSPyRLMError                    anything dspy-rlm raises on purpose
    ├── RLMError                    a call ended without validated outputs; carries
    │   │                           .trajectory, .best_answer and .usage
    │   ├── LimitExceeded           a global limit of the call was reached (.limit names it)
    │   ├── LMFailure               the root model failed past DSPy's retries, or a model
    │   │                           is unusable as configured (no or a rejected key, unknown model)
    │   └── SandboxCrash            the sandbox died and could not be restarted (.__cause__: why)
    ├── SandboxError                raised by the sandbox layer, which knows nothing of a call
    │   ├── SandboxClosed           the sandbox was used after close() (or after it gave up)
    │   ├── SandboxUnavailable      a sandbox could not start, or restart after a failure
    │   └── InputsNotLoaded         inputs that could not be mounted or loaded (also a ValueError)
    ├── StepProblem                 what went wrong in one step; shown to the root model as the
    │   │                           step's output, never raised out of a call
    │   ├── CodeProblem             the model's answer holds no runnable Python
    │   ├── RewriteError            code the synchronous-call rewrite cannot make awaitable
    │   ├── OutputError             a submission that does not fit the signature's outputs
    │   └── BudgetExceeded          a sub-query beyond the call's budget (calls, tokens or cost)
    ├── ScriptExhausted             a `ScriptedLM` was asked more often than it has answers
    └── LibraryError                a code library file that breaks the library's rules (also a
                                    ValueError): the message names the file and the fix

Errors a caller should catch around an RLM call are the `RLMError`s: each holds
what the call did before it ended, so nothing is lost. Bad arguments to a
constructor are plain `ValueError`/`TypeError`, as in DSPy. `StepProblem`s
subclass `ValueError` (and `BudgetExceeded` `RuntimeError`) as they did before
this tree existed, so existing `except` clauses keep working.

This module imports nothing of DSPy or eryx: every layer may raise these.
"""

from __future__ import annotations

from typing import Any, Literal

LimitName = Literal["iterations", "deadline", "tokens", "cost", "sub_calls", "consecutive_errors"]

__all__ = [
    "DSPyRLMError", "RLMError", "LimitExceeded", "LMFailure", "SandboxCrash",
    "SandboxError", "SandboxClosed", "SandboxUnavailable", "InputsNotLoaded",
    "StepProblem", "CodeProblem", "RewriteError", "OutputError", "BudgetExceeded",
    "ScriptExhausted", "LibraryError", "LimitName",
]


class DSPyRLMError(Exception):
    """The root of every error dspy-rlm raises on purpose."""


# -- a call that ended early ---------------------------------------------------

class RLMError(DSPyRLMError, RuntimeError):
    """An RLM call ended without validated outputs.

    Attributes:
        trajectory: the steps made before the end (dicts, as in `Prediction.trajectory`).
        best_answer: the last submission, or None if the code never submitted.
        usage: calls, tokens and seconds spent.
    """

    def __init__(self, message: str, *, trajectory: list[dict], best_answer: dict | None, usage: dict):
        super().__init__(message)
        self.trajectory = trajectory
        self.best_answer = best_answer
        self.usage = usage


class LimitExceeded(RLMError):
    """A global limit of the call was reached; `limit` names which."""

    def __init__(self, limit: LimitName, message: str, **details: Any):
        super().__init__(message, **details)
        self.limit = limit


class LMFailure(RLMError):
    """The root model failed in a way retries did not fix (after DSPy's own retries), or the root or
    sub-model cannot be used as configured (a missing or rejected key, an unknown model or provider)."""


class SandboxCrash(RLMError):
    """The sandbox stopped and could not be restarted, so the call could not go on."""


# -- the sandbox layer -----------------------------------------------------------

class SandboxError(DSPyRLMError):
    """Raised by the sandbox layer (`dspy_rlm.sandbox`)."""


class SandboxClosed(SandboxError, RuntimeError):
    """The sandbox was used after it was closed."""

    def __init__(self, message: str = "this sandbox is closed; create a new one to run more code") -> None:
        super().__init__(message)


class SandboxUnavailable(SandboxError, RuntimeError):
    """A sandbox could not be started, or restarted after a failed step (it is then closed)."""


class InputsNotLoaded(SandboxError, ValueError):
    """Inputs could not be mounted or loaded into the sandbox."""


# -- one step, reported to the root model ------------------------------------------

class StepProblem(DSPyRLMError):
    """A problem with one step; its message is written for the root model, which sees it."""


class CodeProblem(StepProblem, ValueError):
    """The model's answer holds no runnable Python; the message tells the model what to do."""


class RewriteError(StepProblem, ValueError):
    """The step's code cannot be made awaitable (for example a host call inside a lambda)."""


class OutputError(StepProblem, ValueError):
    """A submission does not fit the signature's outputs; the message says how to fix it."""


class BudgetExceeded(StepProblem, RuntimeError):
    """The call's sub-LLM budget (`max_llm_calls`, or its token or cost limit) cannot cover a request."""


# -- offline models ------------------------------------------------------------------

class ScriptExhausted(DSPyRLMError, RuntimeError):
    """A `ScriptedLM` was called more times than it has scripted answers."""


# -- the code library ----------------------------------------------------------------

class LibraryError(DSPyRLMError, ValueError):
    """A `CodeLibrary` file or state that breaks the library's rules; the message names the file and the fix."""
