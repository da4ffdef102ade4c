"""SandboxLimits validation."""

from __future__ import annotations

import pytest

from dspy_rlm import settings
from dspy_rlm.sandbox import SandboxLimits


def test_defaults_come_from_the_one_settings_module():
    limits = SandboxLimits()
    assert (limits.step_timeout_s, limits.memory_bytes, limits.callback_timeout_s, limits.max_callbacks_per_step) == (
        settings.STEP_TIMEOUT_S, settings.MEMORY_MB * 2**20, settings.STEP_TIMEOUT_S, 10_000,
    )
    assert settings.STEP_TIMEOUT_S == 120.0 and settings.MEMORY_MB == 2048


@pytest.mark.parametrize(
    "field, value",
    [
        ("step_timeout_s", 0), ("step_timeout_s", -1.0), ("step_timeout_s", float("inf")),
        ("callback_timeout_s", 0), ("memory_bytes", 0), ("memory_bytes", 5 * 1024**3),
        ("max_callbacks_per_step", 0),
    ],
)
def test_invalid_values_name_the_field_and_the_fix(field, value):
    with pytest.raises(ValueError, match=rf"(?s){field}.*pass"):
        SandboxLimits(**{field: value})


def test_frozen_and_strict_fields():
    limits = SandboxLimits(step_timeout_s=5)
    with pytest.raises(ValueError):
        limits.step_timeout_s = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        SandboxLimits(step_timout_s=5)  # a typo must not pass silently
