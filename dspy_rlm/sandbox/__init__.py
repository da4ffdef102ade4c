"""The sandbox layer: runs Python steps in a pyeryx (CPython on WebAssembly) session.

This package knows nothing of DSPy. The module layer talks to it only through the
names exported here: the `CodeSandbox` protocol and its `StepResult`, the two eryx
sandboxes that satisfy it, their limits, and the helpers host functions share.
"""

from dspy_rlm.sandbox.hostcalls import named_error, remaining, run_awaitable
from dspy_rlm.sandbox.inputs import TextFile, is_identifier
from dspy_rlm.sandbox.jsonsafe import INPUT_TYPES
from dspy_rlm.sandbox.isolated import IsolatedSandbox
from dspy_rlm.sandbox.limits import SandboxLimits
from dspy_rlm.sandbox.output import truncate_middle
from dspy_rlm.sandbox.protocol import (
    RESTARTING_KINDS, CodeSandbox, ErrorKind, SandboxFactory, StepResult, check_factory, check_sandbox,
)
from dspy_rlm.sandbox.rewrite import make_awaitable
from dspy_rlm.sandbox.session import Sandbox

__all__ = [
    "CodeSandbox", "SandboxFactory", "StepResult", "ErrorKind", "RESTARTING_KINDS", "check_factory", "check_sandbox",
    "Sandbox", "IsolatedSandbox", "SandboxLimits", "TextFile", "INPUT_TYPES",
    "is_identifier", "make_awaitable", "named_error", "remaining", "run_awaitable", "truncate_middle",
]
