"""The sandbox seam: what the module layer needs of a place that runs model code.

`CodeSandbox` is the protocol; `Sandbox` (eryx, in process), `IsolatedSandbox`
(eryx, in a worker process) and the bench's in-process `exec` floor satisfy it.
A `SandboxFactory` builds one per call; `RLM(..., sandbox_factory=...)` takes
any factory, and the sandbox classes are factories themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from dspy_rlm.sandbox.limits import SandboxLimits

ErrorKind = Literal["syntax", "exception", "timeout", "memory", "fuel", "callback_limit", "crash", "rewrite"]
"""Why a step failed: the code did not compile (`syntax`) or could not be made awaitable
(`rewrite`); it raised (`exception`), or called host functions too often (`callback_limit`);
or the guest was stopped and restarted after a `timeout`, running out of `memory` or `fuel`,
or a `crash`."""

RESTARTING_KINDS: frozenset[ErrorKind] = frozenset({"timeout", "memory", "fuel", "crash"})
"""Kinds after which the guest was reset: its variables are gone, the inputs are back."""


@dataclass(frozen=True)
class StepResult:
    """What one step did. `stdout`/`stderr` are already truncated (head+tail)."""

    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    error_kind: ErrorKind | None = None
    submitted: bool = False
    submission: Any = None
    restarted: bool = False
    lost_variables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    callbacks: int = 0

    @property
    def observation(self) -> str:
        """The text the model sees: stdout, stderr, error, then [notes]."""
        parts = [p.rstrip("\n") for p in (self.stdout, self.stderr, self.error or "") if p and p.strip()]
        parts += [f"[{note}]" for note in self.notes]
        return "\n".join(parts) if parts else "(no output)"


@runtime_checkable
class CodeSandbox(Protocol):
    """A persistent Python session that runs model-written steps.

    Lifecycle:
        1. A `SandboxFactory` builds it from the inputs (loaded as variables), the host
           functions code may call by name, the limits, and setup code that runs
           whenever the guest (re)starts.
        2. `run(code)` runs one step and returns a `StepResult`; variables persist between
           steps. A step that fails, even one that kills the guest, is reported in its
           result (`restarted=True`, `lost_variables`), never raised. If the guest cannot
           be restarted, `run` raises `SandboxUnavailable` and the sandbox is closed.
        3. `set_inputs(values)` adds or replaces inputs between steps (`InputsNotLoaded`
           if they cannot be loaded; the previous inputs stay).
        4. `variables` names the model's own variables after the last step.
        5. `close()` frees everything; it is safe to call twice. Any other call after it
           raises `SandboxClosed`.
    """

    @property
    def variables(self) -> list[str]:
        """Names of the model's variables after the last step (not inputs or functions)."""
        ...

    def run(self, code: str, timeout_s: float | None = None) -> StepResult:
        """Run one step; `timeout_s` may shorten (never extend) the step's time limit."""
        ...

    def set_inputs(self, inputs: Mapping[str, Any]) -> None:
        """Add inputs, or replace existing ones, in the running guest."""
        ...

    def close(self) -> None:
        """Release the session and its files."""
        ...


class SandboxFactory(Protocol):
    """Builds the `CodeSandbox` of one call. `Sandbox` and `IsolatedSandbox` are factories."""

    def __call__(
        self,
        inputs: Mapping[str, Any],
        functions: Mapping[str, Callable[..., Any]],
        *,
        limits: SandboxLimits,
        setup_code: str,
        max_output_chars: int,
    ) -> CodeSandbox: ...


_MEMBERS = ("variables", "run", "set_inputs", "close")


def missing_members(candidate: Any) -> list[str]:
    """The `CodeSandbox` members a class or an object lacks (empty when it conforms)."""
    return [name for name in _MEMBERS if not hasattr(candidate, name)]


def check_sandbox(sandbox: Any, made_by: Any) -> CodeSandbox:
    """`sandbox` if it satisfies `CodeSandbox`, else a TypeError naming what is missing."""
    if isinstance(sandbox, CodeSandbox):
        return sandbox
    raise TypeError(f"the sandbox factory {made_by!r} returned {type(sandbox).__name__}, which lacks "
                    f"{', '.join(missing_members(sandbox))} of the dspy_rlm.sandbox.CodeSandbox protocol")


def check_factory(factory: Any) -> SandboxFactory:
    """`factory` if it can build sandboxes (a callable; a class must have the protocol's members)."""
    # A class has its members as attributes too, so only a non-class can be a sandbox by mistake.
    instance = not isinstance(factory, type) and isinstance(factory, CodeSandbox)
    if not callable(factory) or instance:
        what = "a sandbox instance" if instance else type(factory).__name__
        raise TypeError(f"sandbox_factory must be a callable that builds a sandbox per call "
                        f"(for example dspy_rlm.sandbox.Sandbox), got {what}")
    if isinstance(factory, type) and missing_members(factory):
        raise TypeError(f"sandbox_factory {factory.__name__} does not satisfy dspy_rlm.sandbox.CodeSandbox: "
                        f"it lacks {', '.join(missing_members(factory))}")
    return factory
