"""What `EryxInterpreter.execute()` returns for a last-line expression, as DSPy's REPL does.

`dspy.PythonInterpreter` (Pyodide) returns the value of a last-line expression instead of
the printed output when it is not None. Here a `str` value is returned the same way (the
text itself, what was printed before it dropped): `dspy.Flex` ends its step with
`json.dumps(...)` and reads that text back. Any other value is printed as its repr, as a
Python REPL does (`1 + 1` gives "2\\n" where Pyodide hands back the number 2).

The value travels in the step's stdout after a marker the host picks, so the host can
tell it from what the code printed.
"""

from __future__ import annotations

import ast
import re
import secrets

__all__ = ["echo_setup", "step_output", "with_echo"]

_MARKER = f"\x1frlm-value-{secrets.token_hex(8)}\x1f"
_LINES = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")  # the parser's line breaks, kept

_ECHO = '''
def _rlm_echo(value):
    if isinstance(value, str):
        print({marker!r} + value, end="")
    elif value is not None:
        print(repr(value))
'''


def echo_setup() -> str:
    """Guest code defining `_rlm_echo`, which `with_echo` calls."""
    return _ECHO.format(marker=_MARKER)


def step_output(stdout: str) -> str:
    """The step's output: a str value the last line returned, else what was printed."""
    at = stdout.rfind(_MARKER)
    return stdout if at < 0 else stdout[at + len(_MARKER):]


def with_echo(code: str) -> str:
    """Hand the value of a last-line expression to `_rlm_echo`: `x` becomes
    `_rlm_echo((x))` in place (same lines)."""
    if not code.strip():
        return code
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return code  # the sandbox reports it
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return code
    value = last.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("print", "SUBMIT"):
        return code
    lines = _LINES.split(code)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(lineno: int, col: int) -> int:
        line = lines[lineno - 1]
        return starts[lineno - 1] + (col if line.isascii() else len(line.encode()[:col].decode(errors="ignore")))

    begin, end = offset(value.lineno, value.col_offset), offset(value.end_lineno, value.end_col_offset)
    return f"{code[:begin]}_rlm_echo(({code[begin:end]})){code[end:]}"
