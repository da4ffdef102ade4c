"""dspy-rlm: Recursive Language Models as DSPy modules, on a pyeryx WebAssembly sandbox.

The public face. Layers below it, from the bottom: `errors`, `settings` and
`fileio`; `sandbox` (eryx, knows nothing of DSPy); `ingest` (files and folders
as inputs, no DSPy either); `library` (the code library: harvested, tested,
versioned functions, no DSPy); `core` (the DSPy module); `lms` (models by name,
scripted, simulated); `observability` (spans, MLflow runs, the live display);
`serving` (the pyfunc model); `integrations` (the `llm` plugin); `programs` and
`optimizers` (task families, example programs, compiling them); `cli` (the
`dspy-rlm` command).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dspy_rlm import errors as _errors
from dspy_rlm import settings as _settings  # noqa: F401  (sets litellm's offline price list first)

# Public names and their modules, imported on first use (PEP 562), so the sandbox
# layer (`dspy_rlm.sandbox`, which knows nothing of DSPy) loads without DSPy.
_EXPORTS = {
    "RLM": "dspy_rlm.core.rlm",
    "RunConfig": "dspy_rlm.core.config",
    "EryxInterpreter": "dspy_rlm.core.interpreter",
    "ScriptedLM": "dspy_rlm.lms.scripted",
    "ScriptedRequest": "dspy_rlm.lms.scripted",
    "SimulatedLM": "dspy_rlm.lms.simulated.lm",
    "LocalSchemaAdapter": "dspy_rlm.lms.local_schema",
    "CodeSandbox": "dspy_rlm.sandbox",
    "SandboxFactory": "dspy_rlm.sandbox",
    "StepResult": "dspy_rlm.sandbox",
    "Sandbox": "dspy_rlm.sandbox",
    "IsolatedSandbox": "dspy_rlm.sandbox",
    "SandboxLimits": "dspy_rlm.sandbox",
    "TextFile": "dspy_rlm.sandbox",
    "read_corpus": "dspy_rlm.ingest",
    "CodeLibrary": "dspy_rlm.library",
    "Tool": "dspy_rlm.core.approval",
    "ApprovalRequest": "dspy_rlm.core.approval",
    "Stabilize": "dspy_rlm.optimizers.stabilize",  # (not in TYPE_CHECKING below: only the cli imports optimizers)
    "RLMProgress": "dspy_rlm.observability.progress",
    "adding_callbacks": "dspy_rlm.observability.progress",
    "inspect_trajectory": "dspy_rlm.observability.viewer",
    "truncate_span_inputs": "dspy_rlm.observability.tracing",
    # Every error, from the one tree in dspy_rlm.errors.
    **{name: "dspy_rlm.errors" for name in _errors.__all__ if name != "LimitName"},
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dspy_rlm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from dspy_rlm.core.config import RunConfig
    from dspy_rlm.core.interpreter import EryxInterpreter
    from dspy_rlm.core.rlm import RLM
    from dspy_rlm.errors import (
        BudgetExceeded, CodeProblem, DSPyRLMError, InputsNotLoaded, LibraryError, LimitExceeded, LMFailure,
        OutputError,
        RewriteError, RLMError, SandboxClosed, SandboxCrash, SandboxError, SandboxUnavailable, ScriptExhausted,
        StepProblem,
    )
    from dspy_rlm.ingest import read_corpus
    from dspy_rlm.library import CodeLibrary
    from dspy_rlm.core.approval import ApprovalRequest, Tool
    from dspy_rlm.lms.local_schema import LocalSchemaAdapter
    from dspy_rlm.lms.scripted import ScriptedLM, ScriptedRequest
    from dspy_rlm.lms.simulated.lm import SimulatedLM
    from dspy_rlm.observability.progress import RLMProgress, adding_callbacks
    from dspy_rlm.observability.viewer import inspect_trajectory
    from dspy_rlm.observability.tracing import truncate_span_inputs
    from dspy_rlm.sandbox import (
        CodeSandbox, IsolatedSandbox, Sandbox, SandboxFactory, SandboxLimits, StepResult, TextFile,
    )
