"""Fixtures shared by the whole test suite."""

from __future__ import annotations


import pytest

from dspy_rlm.sandbox import IsolatedSandbox, Sandbox



@pytest.fixture(scope="session")
def eryx_factory():
    """The process-wide eryx SandboxFactory, loaded from the cache (built and
    cached first if missing, which takes 20-50 s once per machine)."""
    from dspy_rlm.sandbox.factory import load_factory

    return load_factory()


def _built(sandbox_type):
    made = []

    def build(inputs=None, functions=None, **kwargs):
        sandbox = sandbox_type(inputs or {}, functions or {}, **kwargs)
        made.append(sandbox)
        return sandbox

    yield build
    for sandbox in made:
        sandbox.close()


@pytest.fixture
def make():
    """Build Sandboxes that are closed after the test."""
    yield from _built(Sandbox)


@pytest.fixture
def make_isolated():
    """Build IsolatedSandboxes (the guest in a worker process) that are closed after the test."""
    yield from _built(IsolatedSandbox)
