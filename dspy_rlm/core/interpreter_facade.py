"""DSPy's sandbox `dspy` facade on `EryxInterpreter`.

`dspy.Flex` and `dspy.RLM` install the facade with `FacadeInvocation.install`: it adds two host
tools (`__dspy_construct__`, `__dspy_call__`) and runs DSPy's own shim (`SHIM_SETUP`, unchanged)
with the variable `__dspy_host_token`. The shim calls the tools as `globals()[name](**kwargs)` from
`_DspyModule.__setattr__` and from calls of its proxies, where an eryx callback cannot be awaited,
so the two tools are bound in the guest as plain functions over the sandbox's synchronous-call
bridge (`Sandbox(sync_calls=True)`): they block until the host answers, from any frame. Predictor
construction and calls then run on the host in `FacadeInvocation`, with DSPy's budget and
`SandboxLM` metering, and their callbacks fire through `EryxInterpreter.invoke_tool` as on Deno.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dspy.primitives.facade import CALL_TOOL, CONSTRUCT_TOOL, SHIM_SETUP, is_reserved_sandbox_name

__all__ = ["FACADE_TOOLS", "SHIM_SETUP", "facade_variables", "install_code", "is_facade_tool", "sync_tools_code"]

FACADE_TOOLS = (CONSTRUCT_TOOL, CALL_TOOL)

_ALIAS = "_rlm_fv"  # the sandbox mounts `__dspy_x` as `_rlm_fv__dspy_x`; the step binds the real name


def is_facade_tool(name: str) -> bool:
    """The facade's own host tools (other reserved `__dspy*` names are never exposed)."""
    return name in FACADE_TOOLS


def sync_tools_code(names: list[str], dispatch: str) -> str:
    """Guest code defining each tool in `names` as a plain function that calls the host function
    `dispatch(name, ...)` through the sandbox's bridge and waits: callable from any frame, as on Pyodide."""
    # `dispatch` is spelled in two pieces: the sandbox's await rewrite would otherwise see the name of
    # an async host function and parse the whole code (DSPy's shim: about 70 ms a forward) for nothing.
    target = f"{dispatch[:2]!r} + {dispatch[2:]!r}"
    return "\n".join(f"def {name}(*args, **kwargs):\n"
                     f"    return __import__('_rlm_host').call_as({name!r}, {target}, {name!r}, *args, **kwargs)"
                     for name in names)


def install_code(assignments: str, dispatch: str) -> str:
    """Guest code installing the facade: its tools (`sync_tools_code`), its variables
    (`assignments`), then DSPy's shim, unchanged."""
    return "\n".join([sync_tools_code(list(FACADE_TOOLS), dispatch), assignments, SHIM_SETUP])


def facade_variables(variables: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Rename the facade's host-injected variables (`__dspy_host_token`, `__dspy_flex_inputs`: reserved
    `__` names the sandbox's input mount refuses): (the variables to load, guest code binding the names)."""
    loaded, lines = {}, []
    for name, value in variables.items():
        if name.startswith("__") and is_reserved_sandbox_name(name) and name.isidentifier():
            loaded[_ALIAS + name] = value
            lines.append(f"{name} = {_ALIAS}{name}")
        else:
            loaded[name] = value
    return loaded, "\n".join(lines)
