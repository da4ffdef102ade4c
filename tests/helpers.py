"""Small builders shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

from dspy_rlm import ScriptedLM


def step(code: str, reasoning: str = "") -> dict[str, str]:
    """One scripted root-model answer: reasoning plus a fenced code block."""
    return {"reasoning": reasoning or "next", "code": f"```python\n{code}\n```"}


def steps(*codes: str, model: str = "scripted/lm") -> ScriptedLM:
    """A root model that writes these code steps in order (reasoning 'step N')."""
    return ScriptedLM([step(code, f"step {i}") for i, code in enumerate(codes, 1)], model=model)
