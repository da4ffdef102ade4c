"""dspy-rlm: Recursive Language Models as DSPy modules, on a pyeryx WebAssembly sandbox."""

from dspy_rlm.budget import BudgetExceeded
from dspy_rlm.interpreter import EryxInterpreter
from dspy_rlm.outputs import OutputError
from dspy_rlm.rlm import RLM
from dspy_rlm.sandbox import SandboxLimits
from dspy_rlm.scripted import ScriptedLM, ScriptedRequest, ScriptExhausted
from dspy_rlm.simulated import SimulatedLM
from dspy_rlm.tracing import truncate_span_inputs

__all__ = [
    "RLM",
    "EryxInterpreter",
    "ScriptedLM",
    "ScriptedRequest",
    "ScriptExhausted",
    "SimulatedLM",
    "SandboxLimits",
    "BudgetExceeded",
    "OutputError",
    "truncate_span_inputs",
]
