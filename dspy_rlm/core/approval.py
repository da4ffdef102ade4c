"""Side effects behind approval: a tool that writes files, sends mail or calls an API runs only when allowed.

The sandbox keeps model code pure; a user's tool may not be. `Tool(fn, side_effects=True)` marks one.
Before each call of a marked tool, the RLM's approval policy (`RLM(..., approve=...)`) decides with the
tool's name and arguments:

- `"deny"` (the default): every call is refused;
- `"allow"`: every call runs (the caller has decided once for all);
- `"ask"`: a prompt on the terminal (`Allow send_mail(to='a@b.c')? [y/N]`), as the CLI uses it;
- a host callable `policy(request) -> bool | str | None`: True allows; False, None or a message refuses.

A refusal comes back to the model's code as an error raised by the call (the sandbox reports host errors
as `RuntimeError("send_mail: PermissionError: ... was not approved: <reason>")`), which the step's output shows. Every decision is kept in the step's `approvals` (the trajectory) and opened as an
`rlm.approval` span (the trace). Pure tools need no approval and are never asked about.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from dspy.adapters.types.tool import Tool as DSPyTool

from dspy_rlm.observability.tracing import set_outputs, span

POLICY_NAMES = ("deny", "allow", "ask")
ARGUMENT_CHARS = 500  # of the arguments' repr kept in a decision record
Policy = Literal["deny", "allow", "ask"] | Callable[["ApprovalRequest"], Any]


class Tool(DSPyTool):
    """`dspy.Tool`, plus `side_effects=True` for a tool that must be approved before each call."""

    side_effects: bool = False

    def __init__(self, func: Callable[..., Any], *args: Any, side_effects: bool = False, **kwargs: Any):
        super().__init__(func, *args, **kwargs)
        self.side_effects = side_effects


@dataclass(frozen=True)
class ApprovalRequest:
    """One call a policy decides on."""

    tool: str
    arguments: dict[str, Any]

    def describe(self) -> str:
        listed = ", ".join(f"{name}={value!r}" for name, value in self.arguments.items())
        return f"{self.tool}({listed})"


def check_policy(policy: Any) -> Policy:
    if callable(policy) or policy in POLICY_NAMES:
        return policy
    raise ValueError(f"approve must be one of {', '.join(repr(n) for n in POLICY_NAMES)} or a function "
                     f"request -> bool | str, got {policy!r}")


def needs_approval(tool: Any) -> bool:
    return bool(getattr(tool, "side_effects", False))


class ApprovalLog:
    """The decisions of one call, taken by each step's record (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append(record)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self._pending = self._pending, []
        return taken


def gated(name: str, function: Callable[..., Any], policy: Policy, log: ApprovalLog) -> Callable[..., Any]:
    """`function` (a tool's host function, called with keywords) run only when `policy` allows the call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        request = ApprovalRequest(name, {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs})
        with span("rlm.approval", "CHAIN", {"tool": name, "arguments": _bounded(request)}) as active:
            allowed, reason = decide(policy, request)
            record = {"tool": name, "arguments": _bounded(request), "allowed": allowed, "reason": reason,
                      "policy": policy if isinstance(policy, str) else getattr(policy, "__name__", "callable")}
            set_outputs(active, record)
        log.add(record)
        if not allowed:
            raise PermissionError(f"{request.describe()[:ARGUMENT_CHARS]} was not approved: {reason}")
        return function(*args, **kwargs)

    call.__name__ = name
    return call


def decide(policy: Policy, request: ApprovalRequest) -> tuple[bool, str]:
    """(allowed, why) for one request."""
    if policy == "deny":
        return False, "side-effect tools are denied by default (RLM(..., approve='allow', 'ask' or a function))"
    if policy == "allow":
        return True, "allowed by approve='allow'"
    if policy == "ask":
        return _ask(request)
    try:
        verdict = policy(request)
    except Exception as error:  # a failing policy refuses: it must never let a call through by accident
        return False, f"the approval policy raised {type(error).__name__}: {error}"
    if verdict is True:
        return True, "allowed by the approval policy"
    return False, verdict if isinstance(verdict, str) and verdict else "refused by the approval policy"


_ASKING = threading.Lock()  # one question on the terminal at a time


def _ask(request: ApprovalRequest) -> tuple[bool, str]:
    with _ASKING:
        print(f"Allow {request.describe()[:ARGUMENT_CHARS]}? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
    return (True, "allowed at the prompt") if answer in ("y", "yes") else (False, "refused at the prompt")


def _bounded(request: ApprovalRequest) -> str:
    text = repr(request.arguments)
    return text if len(text) <= ARGUMENT_CHARS else text[:ARGUMENT_CHARS - 3] + "..."
