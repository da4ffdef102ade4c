"""The sandbox layer: runs Python steps in a pyeryx (CPython on WebAssembly) session.

This package knows nothing of DSPy. The RLM module talks to it only through the
names exported here.
"""

from dspy_rlm.sandbox.isolated import IsolatedSandbox
from dspy_rlm.sandbox.limits import SandboxLimits
from dspy_rlm.sandbox.output import truncate_middle
from dspy_rlm.sandbox.rewrite import RewriteError, make_awaitable
from dspy_rlm.sandbox.session import Sandbox, StepResult

__all__ = ["Sandbox", "IsolatedSandbox", "SandboxLimits", "StepResult", "RewriteError", "make_awaitable", "truncate_middle"]
