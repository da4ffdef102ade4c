"""Sandbox step results: submission, protected names, exit hooks, output, errors and tracebacks."""

from __future__ import annotations

import pytest

from dspy_rlm.sandbox import StepResult
from tests.sandbox.helpers import SETUP, ok

pytestmark = pytest.mark.usefixtures("eryx_factory")


# ---------------------------------------------------------------- submission and protection


def test_submit_ends_the_step_with_a_json_safe_payload(make):
    sb = make({}, setup_code=SETUP)
    r = sb.run(
        "import datetime\nprint('before')\n"
        "try:\n    SUBMIT(answer=42, s={2, 1}, t=(1,), d={1: 'a'}, b=b'hi', when=datetime.date(2024, 5, 6), "
        "inf=float('inf'), obj=object)\nexcept Exception:\n    print('swallowed')\nprint('after')"
    )
    assert r.error is None and r.submitted
    assert r.stdout == "before\n"
    assert r.submission == {
        "answer": 42, "s": [1, 2], "t": [1], "d": {"1": "a"}, "b": "hi", "when": "2024-05-06",
        "inf": "inf", "obj": "<class 'object'>",
    }
    r = ok(sb, "x = 3")
    assert not r.submitted and r.submission is None
    assert sb.run("FINAL_VAR('x')").submission == {"answer": 3}
    assert sb.run("FINAL(None)").submission == {"answer": None}


def test_submit_inside_async_helper(make):
    sb = make({}, {"q": lambda: "v"}, setup_code=SETUP)
    r = sb.run("def go():\n    SUBMIT(answer=q())\ngo()\nprint('not reached')")
    assert r.submitted and r.submission == {"answer": "v"} and r.stdout == ""


def test_overwritten_protected_names_are_restored(make):
    sb = make({}, {"llm_query": lambda p: p}, setup_code=SETUP)
    r = ok(sb, "llm_query = 5\nSUBMIT = None\ndel FINAL")
    names = ("llm_query", "SUBMIT", "FINAL")
    assert r.notes == [f"`{n}` was overwritten by your code and has been restored" for n in names]
    assert "[`llm_query` was overwritten by your code and has been restored]" in r.observation
    assert ok(sb, "print(llm_query('x'))").stdout == "x\n"
    assert sb.run("FINAL(1)").submitted
    assert sb.variables == []


@pytest.mark.parametrize(
    "code",
    [
        "exit()", "quit(1)", "import sys; sys.exit(2)", "import os; os._exit(1)",
        "import os; os.abort()", "raise SystemExit(3)", "breakpoint()",
    ],
)
def test_exit_is_disabled_and_the_session_survives(make, code):
    sb = make({"context": "c"})
    ok(sb, "keep = 1")
    r = sb.run(code)
    assert r.error_kind == "exception" and not r.restarted
    assert r.error.splitlines()[-1] in (
        "RuntimeError: exit() is disabled in this sandbox; call SUBMIT(...) to finish",
        "RuntimeError: breakpoint() is not available in this sandbox",
        "SystemExit: 3",
    )
    assert ok(sb, "print(keep, context)").stdout == "1 c\n"


def test_reassigned_exit_hooks_are_restored(make):
    sb = make({})
    r = ok(sb, "import sys\nsys.exit = print")
    assert r.notes == ["`sys.exit` was overwritten by your code and has been restored"]
    assert "disabled" in sb.run("import sys; sys.exit()").error


# ---------------------------------------------------------------- output and errors


def test_stdout_and_stderr_are_separate_and_kept_before_an_error(make):
    sb = make({})
    r = sb.run("import sys\nprint('out 1')\nprint('err 1', file=sys.stderr)\nprint('out 2')\n{}['missing']")
    assert r.stdout == "out 1\nout 2\n"
    assert r.stderr == "err 1\n"
    assert r.error_kind == "exception"
    assert r.error == (
        'Traceback (most recent call last):\n  File "<step 1>", line 5, in <module>\n'
        "    {}['missing']\n    ~~^^^^^^^^^^^\nKeyError: 'missing'"
    )
    assert r.observation == "out 1\nout 2\nerr 1\n" + r.error


def test_output_is_truncated_head_and_tail(make):
    sb = make({}, max_output_chars=100)
    r = ok(sb, "for i in range(200_000):\n    print(f'line {i}')")
    assert r.stdout.startswith("line 0\nline 1\n")
    assert r.stdout.endswith("line 199999\n")
    assert "characters cut]" in r.stdout
    assert len(r.stdout) < 200
    r = sb.run("raise ValueError('x' * 5000)")
    assert len(r.error) < 300 and r.error.endswith("x" * 40)


def test_traceback_shows_only_model_frames(make):
    sb = make({}, {"tool": lambda: 1})
    ok(sb, "def inner(x):\n    return 1 / x\n")
    r = sb.run("import json\ndef outer():\n    return inner(0)\ntool()\nouter()")
    lines = r.error.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert '  File "<step 2>", line 5, in <module>' in lines
    assert '  File "<step 1>", line 2, in inner' in lines
    assert lines[-1] == "ZeroDivisionError: division by zero"
    for bad in ("_eryx", "<string>", "<user>", "<rlm-sandbox>", "/python-stdlib"):
        assert bad not in r.error
    r = sb.run("import json\njson.loads('{bad')")
    assert "/python-stdlib" not in r.error
    assert r.error.splitlines()[-1].startswith("json.decoder.JSONDecodeError: Expecting property name")


def test_chained_exceptions_are_trimmed_too(make):
    sb = make({}, {"fail": lambda: 1 / 0})
    r = sb.run("try:\n    fail()\nexcept RuntimeError as e:\n    raise KeyError('k') from e")
    assert "During handling" not in r.error and "direct cause" in r.error
    assert r.error.count("<rlm-sandbox>") == 0 and r.error.endswith("KeyError: 'k'")


def test_syntax_errors_keep_the_caret(make):
    sb = make({})
    r = sb.run("x = 1\ny = (x +\n")
    assert r.error_kind == "syntax"
    assert r.error.startswith('  File "<step 1>", line 2\n    y = (x +\n        ^\nSyntaxError:')
    r = sb.run("print('a')\x00")
    assert r.error_kind == "syntax" and "NUL" in r.error and r.stdout == ""


def test_rewritten_lines_lose_misleading_carets(make):
    sb = make({}, {"llm_query": lambda p: p})
    r = sb.run("x = 1 + llm_query('a')")
    assert r.error.splitlines()[-2:] == [
        "    x = 1 + llm_query('a')",
        "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
    ]


def test_observation_rendering():
    assert StepResult().observation == "(no output)"
    r = StepResult(stdout="a\n", stderr="b\n", error="E: x", notes=["n1", "n2"])
    assert r.observation == "a\nb\nE: x\n[n1]\n[n2]"


def test_result_name_survives_between_steps(make):
    sb = make({})
    ok(sb, "result = [1, 2]")
    assert ok(sb, "print(result)").stdout == "[1, 2]\n"
