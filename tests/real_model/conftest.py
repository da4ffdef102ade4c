"""Opt-in tests against a real model server (`scripts/real_model_smoke.sh` starts one).

They run only when `DSPY_RLM_REAL_MODEL_BASE` names an OpenAI-compatible endpoint; otherwise they
are skipped, so `.ci/run` (which has no such server and no time for its 19-minute build) skips them.
"""

from __future__ import annotations

import os

import dspy
import pytest

BASE = os.environ.get("DSPY_RLM_REAL_MODEL_BASE")


def pytest_configure(config):
    config.addinivalue_line("markers", "real_model: needs a real model server (scripts/real_model_smoke.sh)")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="no real model server: run scripts/real_model_smoke.sh")
    for item in items:
        if "real_model" in item.keywords and not BASE:
            item.add_marker(skip)


@pytest.fixture
def local_lm():
    """A `dspy.LM` on the local server. LiteLLM's engine: DSPy's default one sends
    `max_completion_tokens`, which llama.cpp's server ignores, so `max_tokens` would not hold."""
    def make(**kwargs):
        settings = {"max_tokens": 48, "temperature": 0.0, "cache": False, "num_retries": 0, **kwargs}
        return dspy.LM("openai/smollm2", api_base=BASE, api_key="local-server", engine="litellm", **settings)
    return make
