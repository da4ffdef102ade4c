"""`RunConfig`: everything one RLM call needs to know, frozen, built once by `RLM`.

A call (`RLMRun`) reads its configuration from here and never from the module,
so the run depends on data, not on the class that made it: a child run, a
test or a benchmark can build one without an `RLM`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.adapters.types.tool import Tool

from dspy_rlm.core.limits import RunLimits
from dspy_rlm.core.signatures import field_description
from dspy_rlm.sandbox import SandboxFactory, SandboxLimits


@dataclass(frozen=True)
class RunConfig:
    """The task, the three predictors, the limits, the tools and the sandbox factory of a call."""

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
