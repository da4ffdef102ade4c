"""Side by side: DSPy's tests on Deno and on eryx, from the JUnit XML of scripts/dspy_tests.sh.

    python -m tools.dspy_suite.compare OUT_DIR   (reads OUT_DIR/deno.xml and OUT_DIR/eryx.xml)

Prints the counts per run and every test that fails on eryx, with the first line of its error
and a reason class (see README, "DSPy's own tests"); "?" marks one no rule explains.
"""

from __future__ import annotations

import collections
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# (class, pattern on the error's first line or the test name); the first match wins.
RULES = [
    ("private attribute", r"has no attribute '_|object has no attribute 'deno_process'|_tools_registered"),
    ("Deno/Pyodide internals", r"Deno options|[Dd]eno|No module named 'js'|PythonError|[Pp]yodide|subprocess|"
                               r"runner\.js|request_ids|json-?rpc|JSONRPC|SuiteInterpreter'>|is PythonInterpreter"),
    # a last-line value comes back printed (repr + newline), not as the value itself
    ("documented difference: last-line value", r"assert '.*\\n' == |assert \".*\\n\" == |isinstance\(\"|"
                                               r"string indices must be integers|should match|should work|should be "
                                               r"correctly|Should be able"),
    ("documented difference: error text", r"Regex pattern did not match|missing 1 required|generated_c"),
    ("documented difference: None stays None", r"'str' in 'NoneType"),
]


# Tests whose error's first line says too little; each was read.
EXPLAINED = {
    "test_enable_env_vars_flag": "Deno/Pyodide internals",  # Deno's --allow-env (eryx: no env vars at all)
    "test_guest_prototype_hook_cannot_redirect_tool_wrapper": "Deno/Pyodide internals",  # imports Pyodide's `js`
    "test_interpreter_security_filesystem_access": "Deno/Pyodide internals",  # imports Pyodide's `js`
    "test_serialize_set_mixed_types": "documented difference: last-line value",
    "test_default_is_sandbox": "Deno/Pyodide internals",  # isinstance(default factory(), PythonInterpreter)
    "test_nested_rlm_tool_provenance": "Deno/Pyodide internals",  # sys.platform == "emscripten" (eryx: "wasi")
}


def outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """test id -> (passed|failed|error|skipped, first line of the message)."""
    found = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        state, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                state = {"failure": "failed"}.get(kind, kind)
                lines = (element.get("message") or "").strip().splitlines()
                message = lines[0][:160] if lines else ""
                break
        found[test] = (state, message)
    return found


def reason(test: str, message: str, on_deno: str) -> str:
    if on_deno in ("failed", "error"):
        return "fails on Deno too (test newer or older than the installed dspy)"
    if test.rpartition("::")[2] in EXPLAINED:
        return EXPLAINED[test.rpartition("::")[2]]
    for label, pattern in RULES:
        if re.search(pattern, f"{message} {test}"):
            return label
    return "?"


def main(folder: str) -> None:
    runs = {name: outcomes(Path(folder) / f"{name}.xml") for name in ("deno", "eryx")}
    for name, found in runs.items():
        counts = collections.Counter(state for state, _ in found.values())
        print(f"{name}: " + ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped")))
    rows = []
    for test, (state, message) in sorted(runs["eryx"].items()):
        if state in ("failed", "error"):
            on_deno = runs["deno"].get(test, ("missing", ""))[0]
            rows.append((reason(test, message, on_deno), test, on_deno, message))
    print(collections.Counter(row[0] for row in rows))
    for row in rows:
        print(" | ".join(row))


if __name__ == "__main__":
    main(sys.argv[1])
