"""Why eryx stopped a step, and what the model is told about it."""

from __future__ import annotations

import eryx

from dspy_rlm.sandbox.limits import SandboxLimits
from dspy_rlm.sandbox.protocol import ErrorKind

__all__ = ["abandoned_notes", "classify_failure", "failure_message"]

# wasmtime caps the data one host call copies (about 128 MiB on pyeryx 0.11), far below the memory cap.
_HOSTCALL_TOO_BIG = "too much data is being copied between the host and the guest"


def classify_failure(exc: BaseException, timed_out: bool) -> tuple[ErrorKind, str]:
    """Why eryx stopped a step, from the exception it raised: (kind, detail).

    eryx 0.11 raises one `ResourceLimitError` for fuel and memory alike, so its message
    is the only way to tell them apart; `eryx.TimeoutError` is not an `EryxError`; and
    a callback refused at the step's deadline (`timed_out`) suspends the guest (an
    `ExecutionError`)."""
    if isinstance(exc, eryx.TimeoutError):
        return "timeout", ""
    if isinstance(exc, eryx.ResourceLimitError):
        return ("fuel" if "fuel" in str(exc).lower() else "memory"), str(exc)
    if timed_out:
        return "timeout", ""
    if _HOSTCALL_TOO_BIG in str(exc):
        return "memory", str(exc)
    if "MemoryError" in str(exc):  # the guest's own MemoryError, outside the step runner (loading inputs)
        return "memory", str(exc)
    return "crash", str(exc)


def failure_message(kind: str, detail: str, limits: SandboxLimits, step_timeout_s: float) -> str:
    """The step's error after the guest was stopped and restarted: what happened, and what to do."""
    if kind == "memory" and _HOSTCALL_TOO_BIG in detail:
        return ("MemoryError: a host function call carried more data than one call can copy between the "
                "sandbox and the host (about 100 MB); pass less per call (a slice, or a summary of it), or "
                "split the work over several calls")
    if kind == "timeout":
        return f"TimeoutError: the step ran longer than {step_timeout_s:g} s and was stopped"
    if kind == "memory":
        return f"MemoryError: the step used more than the {limits.memory_bytes / 2**20:,.0f} MiB memory limit"
    if kind == "fuel":
        return "ResourceLimitError: the step ran out of its instruction budget"
    return "SandboxCrash: the Python interpreter in the sandbox stopped abruptly"


def abandoned_notes(abandoned: list[str], step_timeout_s: float) -> list[str]:
    """What the step says of host calls it stopped waiting for (so a timeout is not blamed on the code)."""
    names = ", ".join(f"`{name}`" for name in dict.fromkeys(abandoned))
    if not names:
        return []
    return [f"{names} was still running when the step's {round(step_timeout_s, 1):g} s ran out; "
            "the call was abandoned and its result is lost"]
