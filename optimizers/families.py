"""A task family, its splits, its RLM program and its models, ready for an optimizer.

`model="sim"` means the simulated model with this family's world (root and
sub-model); `reflection_model="sim"` / `prompt_model="sim"` mean the
simulated teacher (`dspy_rlm.optimizers.simulated_teacher`). Any other name is a
LiteLLM model (`dspy.LM`), with keys read from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import dspy

from dspy_rlm.lms.names import is_simulated, make_lm

DEFAULT_SIZES = {"train": 16, "dev": 16, "test": 16, "context": 2**13}
DEFAULT_RLM = {"max_iters": 8, "max_llm_calls": 24}


def family_names() -> list[str]:
    from dspy_rlm.programs.families import FAMILIES

    return list(FAMILIES)


@dataclass
class FamilySetup:
    """Everything `optimize` needs about one family and its models."""

    name: str
    model: str
    signature: str | None  # None for a program the user built (it is not rebuilt from a signature)
    train: list[dspy.Example]
    dev: list[dspy.Example]
    test: list[dspy.Example]
    metric: Callable[..., Any]
    lm: Any
    sub_lm: Any  # None when the program has no separate sub-model the run knows of
    reflection_lm: Any
    prompt_lm: Any
    program: dspy.Module
    sizes: dict[str, int]
    model_names: dict[str, str | None]
    rlm_kwargs: dict[str, Any] = field(default_factory=dict)
    lm_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model_kind(self) -> str:
        return "simulated (not a real language model)" if is_simulated(self.model) else "language model"

    def serving_config(self) -> dict[str, Any]:
        """`log_rlm_model` arguments that rebuild this program from code (models by name only)."""
        from dspy_rlm.observability.tracking import REDACTED, redact

        public = {k: v for k, v in redact(self.lm_kwargs).items() if v != REDACTED}  # keys stay in the environment
        if self.signature is None:
            raise ValueError("Only a task family's program can be logged as a servable model here; for your own "
                             "program call dspy_rlm.serving.pyfunc.log_rlm_model with program='module:function'")
        simulated = is_simulated(self.model) or is_simulated(self.model_names.get("sub"))
        # Only the simulated model needs the families imported (they register its worlds).
        imports = ["dspy_rlm.programs.families"] if simulated else []
        return {"signature": self.signature, "rlm_kwargs": self.rlm_kwargs, "model": self.model,
                "sub_model": self.model_names["sub"], "lm_kwargs": public, "imports": imports}


def load_family(name: str, model: str, *, sub_model: str | None = None, reflection_model: str | None = None,
                prompt_model: str | None = None, sizes: dict[str, int] | None = None, seed: int = 0,
                rlm_kwargs: dict[str, Any] | None = None, lm_kwargs: dict[str, Any] | None = None) -> FamilySetup:
    """The family `name` with its splits (seeded), metric, program and models.

    `lm_kwargs` (for example `api_base`) go to every `dspy.LM` built from a LiteLLM name."""
    from dspy_rlm.core.rlm import RLM
    from dspy_rlm.programs.families import get_family

    family = get_family(name)
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    splits = family.dataset(sizes["train"], sizes["dev"], sizes["test"], size=sizes["context"], seed=seed)
    model = f"sim/{name}" if model == "sim" else model
    sub_model = (f"sim/{name}" if sub_model == "sim" else sub_model) or model
    lm_kwargs = dict(lm_kwargs or {})

    def build(spec: str) -> Any:
        return make_lm(spec) if is_simulated(spec) else make_lm(spec, **lm_kwargs)

    lm = build(model)
    sub_lm = lm if sub_model == model else build(sub_model)
    rlm_kwargs = {**DEFAULT_RLM, **(rlm_kwargs or {})}
    program = RLM(family.signature, sub_lm=sub_lm, **rlm_kwargs)
    names = {"root": model, "sub": sub_model, "reflection": reflection_model, "prompt": prompt_model}
    return FamilySetup(
        name=name, model=model, signature=family.signature, train=splits.train, dev=splits.dev, test=splits.test,
        metric=family.metric, lm=lm, sub_lm=sub_lm, reflection_lm=_teacher(reflection_model, lm_kwargs),
        prompt_lm=_teacher(prompt_model, lm_kwargs), program=program, sizes=sizes, model_names=names,
        rlm_kwargs=rlm_kwargs, lm_kwargs=lm_kwargs,
    )


def _teacher(spec: str | None, lm_kwargs: dict[str, Any]) -> Any:
    if spec is None:
        return None
    if spec == "sim":
        from dspy_rlm.optimizers.simulated_teacher import SimulatedTeacher

        return SimulatedTeacher()
    return make_lm(spec, **lm_kwargs)
