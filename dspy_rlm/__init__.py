"""dspy-rlm: Recursive Language Models as DSPy modules, on a pyeryx WebAssembly sandbox."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names and their modules, imported on first use (PEP 562), so the sandbox
# layer (`dspy_rlm.sandbox`, which knows nothing of DSPy) loads without DSPy.
_EXPORTS = {
    "RLM": "dspy_rlm.core.rlm",
    "EryxInterpreter": "dspy_rlm.core.interpreter",
    "ScriptedLM": "dspy_rlm.lms.scripted",
    "ScriptedRequest": "dspy_rlm.lms.scripted",
    "ScriptExhausted": "dspy_rlm.lms.scripted",
    "SimulatedLM": "dspy_rlm.lms.simulated.lm",
    "SandboxLimits": "dspy_rlm.sandbox",
    "BudgetExceeded": "dspy_rlm.core.budget",
    "OutputError": "dspy_rlm.core.outputs",
    "truncate_span_inputs": "dspy_rlm.observability.tracing",
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
    from dspy_rlm.core.budget import BudgetExceeded
    from dspy_rlm.core.interpreter import EryxInterpreter
    from dspy_rlm.core.outputs import OutputError
    from dspy_rlm.core.rlm import RLM
    from dspy_rlm.sandbox import SandboxLimits
    from dspy_rlm.lms.scripted import ScriptedLM, ScriptedRequest, ScriptExhausted
    from dspy_rlm.lms.simulated.lm import SimulatedLM
    from dspy_rlm.observability.tracing import truncate_span_inputs
