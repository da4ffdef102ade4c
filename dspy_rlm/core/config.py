"""`RunConfig`: everything one RLM call needs to know, frozen, built once by `RLM`.

A call (`RLMRun`) reads its configuration from here and never from the module,
so the run depends on data, not on the class that made it: a child run, a
test or a benchmark can build one without an `RLM`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.adapters.types.tool import Tool

from dspy_rlm.core.compaction import CompactionPolicy
from dspy_rlm.core.limits import RunLimits
from dspy_rlm.core.signatures import field_description
from dspy_rlm.library import CodeLibrary
from dspy_rlm.sandbox import SandboxFactory, SandboxLimits


@dataclass(frozen=True)
class RunConfig:
    """The task, the predictors, the limits, the tools and the sandbox factory of a call."""

    signature: type[dspy.Signature]
    generate_code: dspy.Predict
    sub_query: dspy.Predict
    extract: dspy.Predict
    sub_lm: dspy.BaseLM | None
    tools: Mapping[str, Tool]
    sandbox_factory: SandboxFactory
    sandbox_limits: SandboxLimits
    limits: RunLimits
    max_iters: int
    max_llm_calls: int
    max_output_chars: int
    max_prompt_chars: int
    max_concurrency: int
    verbose: bool = False
    # Recursion (`core/recursion.py`): the deepest run, live child sandboxes per depth.
    max_depth: int = 1
    max_live_sandboxes: int = 4
    max_child_llm_calls: int | None = None  # calls one child run may spend (None: any left in the tree)
    # Named sub-models for `llm_query(prompt, model=name)`.
    sub_lms: Mapping[str, dspy.BaseLM] = dataclasses.field(default_factory=dict)
    # `validate(outputs) -> str | None` on the host: a message sends a submission back to the model.
    validate: Callable[[dict[str, Any]], str | None] | None = None
    # History compaction (`core/compaction.py`): the predictor and when it starts, or None (never).
    compact: dspy.Predict | None = None
    compaction: CompactionPolicy | None = None
    # A child run's predictor calls use these signatures (its own task's), keeping the predictors' demos.
    code_signature: type[dspy.Signature] | None = None
    extract_signature: type[dspy.Signature] | None = None
    # The code library loaded into every sandbox session, and its optional solver (`core/solver.py`).
    library: CodeLibrary | None = None
    # Who allows each call of a side-effect tool (`core/approval.py`): "deny", "allow", "ask" or a function.
    approve: Any = "deny"

    @property
    def output_names(self) -> list[str]:
        return list(self.signature.output_fields)

    def input_descriptions(self) -> dict[str, str]:
        """Each input's description, as `variables_info` shows it (empty when DSPy made one up)."""
        return {name: field_description(field) for name, field in self.signature.input_fields.items()}

    def following(self, **current: Any) -> RunConfig:
        """This config, or a copy holding the given collaborators where they were swapped.

        Optimizers and users may assign new predictors or a new `sub_lm` to a module
        after it was built; a call must use what the module holds now."""
        changed = {name: value for name, value in current.items() if getattr(self, name) is not value}
        return dataclasses.replace(self, **changed) if changed else self
