"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os

import pytest

from dspy_rlm.sandbox import Sandbox

# litellm fetches its cost map from the network when first imported unless told not to; offline that stalls.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def eryx_factory():
    """The process-wide eryx SandboxFactory, loaded from the cache (built and
    cached first if missing, which takes 20-50 s once per machine)."""
    from dspy_rlm.sandbox.factory import load_factory

    return load_factory()


@pytest.fixture
def make():
    """Build Sandboxes that are closed after the test."""
    made = []

    def build(inputs=None, functions=None, **kwargs):
        sb = Sandbox(inputs or {}, functions or {}, **kwargs)
        made.append(sb)
        return sb

    yield build
    for sb in made:
        sb.close()
