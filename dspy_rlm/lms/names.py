"""Language models from a name, so runs, saved configs and served models refer to models by name only.

A spec is one of:
- `"module:function"`: the function is called (with the keyword arguments) and returns an LM;
- `"sim"` or `"sim/<variant>"`: the simulated code-writing model in `dspy_rlm.lms.simulated.lm`;
- anything else: `dspy.LM(spec, **kwargs)` (a LiteLLM model name; keys come from the environment).

No spec or saved config ever holds an API key.
"""

from __future__ import annotations

import importlib
from typing import Any

import dspy

SIMULATED_PREFIX = "sim"


def make_lm(spec: str, **kwargs: Any) -> dspy.BaseLM:
    """Build the LM named by `spec` (see the module docstring)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"A model name is required, got {spec!r}")
    if ":" in spec and "/" not in spec.split(":", 1)[0]:
        return _call_factory(spec, kwargs)
    if spec == SIMULATED_PREFIX or spec.startswith(SIMULATED_PREFIX + "/"):
        from dspy_rlm.lms.simulated import lm as simulated

        return simulated.make_lm(spec, **kwargs)
    return dspy.LM(spec, **kwargs)


def is_simulated(spec: str | None) -> bool:
    return bool(spec) and (spec == SIMULATED_PREFIX or spec.startswith(SIMULATED_PREFIX + "/"))


def load_object(path: str) -> Any:
    """Import `"package.module:attribute"`."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"Expected 'module:attribute', got {path!r}")
    return getattr(importlib.import_module(module_name), attribute)


def _call_factory(spec: str, kwargs: dict[str, Any]) -> dspy.BaseLM:
    factory = load_object(spec)
    lm = factory(**kwargs)
    if not isinstance(lm, dspy.BaseLM):
        raise TypeError(f"{spec} returned {type(lm).__name__}, not a dspy LM")
    return lm
