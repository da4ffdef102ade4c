"""Running a library's recorded tests in the sandbox (`dspy-rlm library test`).

One sandbox session loads the library once; each recorded call is one step that calls
the function with the recorded arguments and compares its result, as JSON, with the
recorded one. A changed function that answers differently fails its tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dspy_rlm.library.library import CodeLibrary
from dspy_rlm.library.recording import RecordedCall
from dspy_rlm.sandbox import CodeSandbox, Sandbox, SandboxLimits

_VERDICT = "__dspy_rlm_test__ "
_SHOWN_CHARS = 300


@dataclass(frozen=True)
class TestOutcome:
    """One recorded call, run again: passed, or the reason it failed."""

    __test__ = False  # not a pytest class

    function: str
    number: int
    passed: bool
    detail: str = ""

    def line(self) -> str:
        status = "ok  " if self.passed else "FAIL"
        return f"{status} {self.function}[{self.number}]" + (f": {self.detail}" if self.detail else "")


def run_tests(library: CodeLibrary, *, names: list[str] | None = None,
              functions: Mapping[str, Callable[..., Any]] | None = None,
              sandbox_factory: Callable[..., CodeSandbox] = Sandbox,
              limits: SandboxLimits | None = None) -> list[TestOutcome]:
    """Run the recorded tests of `names` (default: every function) in one sandbox session.

    `functions` are host functions the library's code may call (a stub `llm_query`, say)."""
    host = dict(functions or {})
    sandbox = sandbox_factory({}, host, limits=limits or SandboxLimits(), setup_code=library.source(host),
                              max_output_chars=10_000)
    try:
        outcomes = []
        for name in names if names is not None else library.names:
            for number, call in enumerate(library.functions[name].tests):
                outcomes.append(_run_one(sandbox, call, number))
        return outcomes
    finally:
        sandbox.close()


def _run_one(sandbox: CodeSandbox, call: RecordedCall, number: int) -> TestOutcome:
    case = json.dumps({"args": list(call.args), "kwargs": call.kwargs, "result": call.result})
    code = "\n".join([
        "import json as _json",
        f"_case = _json.loads({case!r})",
        f"_got = {call.function}(*_case['args'], **_case['kwargs'])",
        "try:",
        "    _same = _json.loads(_json.dumps(_got)) == _case['result']",
        "except (TypeError, ValueError):",
        "    _same = False",
        f"print({_VERDICT!r} + _json.dumps({{'same': _same, 'got': repr(_got)[:{_SHOWN_CHARS}]}}))",
    ])
    result = sandbox.run(code)
    if result.error:
        return TestOutcome(call.function, number, False, f"raised: {result.error.strip().splitlines()[-1]}")
    verdicts = [line for line in result.stdout.splitlines() if line.startswith(_VERDICT)]
    if not verdicts:
        return TestOutcome(call.function, number, False, "the test printed no verdict")
    verdict = json.loads(verdicts[-1][len(_VERDICT):])
    if verdict["same"]:
        return TestOutcome(call.function, number, True)
    expected = repr(call.result)[:_SHOWN_CHARS]
    return TestOutcome(call.function, number, False, f"returned {verdict['got']}, recorded {expected}")
