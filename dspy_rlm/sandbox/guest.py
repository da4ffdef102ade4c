"""The host's side of the guest: the snippets it sends to the sandbox, and the
guest runtime's source (`guest_module.py`) they boot.

The guest support code lives in a module `_rlm_host` (not in the user's globals)
so model code can't clobber it by accident. Each step is one eryx `execute()`
that calls `_rlm_host.run_sync` / `run_async`: it compiles and runs the model's
code in the user's globals, catches every exception (so eryx never sees one: no
eryx frames, no traceback echoed into stderr, no poisoned instance after
`raise SystemExit`), and leaves a report in `__rlm_result__` with the error, the
submission, the variables, the async names and the names it restored.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = [
    "RESULT_VARIABLE", "INPUTS_MOUNT", "boot_code", "boot_done", "step_code", "step_filename", "set_inputs_code",
    "well_formed",
]

RESULT_VARIABLE = "__rlm_result__"
INPUTS_MOUNT = "/inputs"
CALLBACK_PREFIX = "__rlm_fn_"

# The guest runtime's source: run in the sandbox as module `_rlm_host` (see guest_module.py).
# guest_sync.py (synchronous host calls over the bridge) is part of the same module.
GUEST_MODULE = "\n\n".join(
    resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    for name in ("guest_module.py", "guest_sync.py")
)

# Compiling GUEST_MODULE takes the guest ~10 ms; the bytecode it hands back on
# the first boot in this process is reused by later boots (same guest Python).
_bytecode: bytes | None = None

_BOOT = """\
def __rlm_boot(code):
    import sys, types, marshal
    module = types.ModuleType("_rlm_host")
    module.G = globals()
    sys.modules["_rlm_host"] = module
    if isinstance(code, str):
        code = compile(code, "<rlm-sandbox>", "exec")
        globals()["__rlm_result__"] = marshal.dumps(code).hex()
    else:
        code = marshal.loads(code)
    exec(code, module.__dict__)
    return module
__rlm_boot({code!r}).init({inputs!r}, {functions!r}, {limits!r}, {bridge!r})
del __rlm_boot
"""


def boot_code(
    inputs: list[tuple[str, str, str]], functions: list[str], *, max_calls: int, callback_timeout_s: float,
    bridge: tuple[str, int, str] | None = None,
) -> str:
    """Code for a fresh guest: install `_rlm_host`, load the inputs (name, file
    name in the inputs folder, "text" or "json"), define the function wrappers and
    connect to the synchronous-call bridge at `bridge` (host, port, token) if given.
    Pass what its execute() returned to `boot_done`."""
    limits = {"calls": max_calls, "callback_s": callback_timeout_s}
    code = GUEST_MODULE if _bytecode is None else _bytecode
    return _BOOT.format(code=code, inputs=inputs, functions=functions, limits=limits, bridge=bridge)


def boot_done(result: object) -> None:
    """Keep the guest module's bytecode if the boot compiled it."""
    global _bytecode
    if isinstance(result, str):
        _bytecode = bytes.fromhex(result)


def step_filename(number: int) -> str:
    """The file name tracebacks show for step `number`."""
    return f"<step {number}>"


def step_code(code: str, original: str | None, filename: str, *, seal: bool = False) -> str:
    """The execute() snippet that runs `code` (as rewritten; `original` is what the
    model wrote, if different) under the guest's error handling."""
    args = f"{code!r}, {original!r}, {filename!r}, {seal!r}"
    if "await" in code or "async" in code:
        return f"await __import__('_rlm_host').run_async({args})"
    return f"__import__('_rlm_host').run_sync({args})"


def set_inputs_code(inputs: list[tuple[str, str, str]]) -> str:
    """The execute() snippet that loads these inputs (as for `boot_code`) into a running guest."""
    return f"__import__('_rlm_host').set_inputs({inputs!r})"


def well_formed(report: Any) -> bool:
    """Whether a step's report has the shape the guest runner writes. Model code can
    replace the runner (it lives in the guest), so the host never trusts the shape."""
    if not isinstance(report, dict):
        return False
    for key in ("variables", "async", "restored"):
        if not isinstance(report.get(key), list) or not all(isinstance(v, str) for v in report[key]):
            return False
    if any(key in report and not isinstance(report[key], str) for key in ("error", "kind", "submission")):
        return False
    if "submission" in report:
        try:
            json.loads(report["submission"])
        except ValueError:
            return False
    return True
