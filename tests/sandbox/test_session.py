"""Sandbox: inputs, host functions, submission, errors, recovery, isolation."""

from __future__ import annotations

import contextvars
import datetime as dt
import gc
import glob
import math
import os
import tempfile
import threading
import time

import pytest
from pydantic import BaseModel

from dspy_rlm.errors import SandboxClosed, SandboxUnavailable
from dspy_rlm.sandbox import Sandbox, SandboxLimits, StepResult

pytestmark = pytest.mark.usefixtures("eryx_factory")

SETUP = """
def SUBMIT(**fields):
    _rlm_submit(fields)

def FINAL(answer):
    _rlm_submit({"answer": answer})

def FINAL_VAR(name):
    _rlm_submit({"answer": globals()[name]})
"""
FAST = SandboxLimits(step_timeout_s=1.5)


def ok(sb: Sandbox, code: str) -> StepResult:
    r = sb.run(code)
    assert r.error is None, r.error
    return r


# ---------------------------------------------------------------- inputs and state


class Doc(BaseModel):
    title: str
    tags: list[str]


def test_inputs_of_every_kind_arrive_as_python_values(make):
    inputs = {
        "text": "héllo\nwörld 😀",
        "d": {"a": [1, 2.5, None, True], "b": {"c": "x"}},
        "items": [1, "two", {"three": 3}],
        "n": 7,
        "x": 2.5,
        "flag": False,
        "nothing": None,
        "doc": Doc(title="t", tags=["a", "b"]),
        "pair": (1, 2),
    }
    sb = make(inputs)
    r = ok(sb, "print(repr(text)); print(d, items, n, x, flag, nothing, doc, pair, sep='|')")
    assert r.stdout == (
        "'héllo\\nwörld 😀'\n{'a': [1, 2.5, None, True], 'b': {'c': 'x'}}|[1, 'two', {'three': 3}]|7|2.5"
        "|False|None|{'title': 't', 'tags': ['a', 'b']}|[1, 2]\n"
    )
    r = ok(sb, "print(type(text).__name__, type(d).__name__, type(n).__name__, type(x).__name__)")
    assert r.stdout == "str dict int float\n"


def test_input_names_are_checked(make):
    for bad in ("1abc", "a-b", "class", "", "__secret", "invoke"):
        with pytest.raises(ValueError, match=repr(bad).replace("\\", "\\\\")):
            Sandbox({bad: "x"})
    with pytest.raises(ValueError, match="both as an input and as a function"):
        Sandbox({"f": 1}, {"f": print})
    with pytest.raises(TypeError, match="input 'obj'"):
        Sandbox({"obj": object()})
    with pytest.raises(TypeError, match="not callable"):
        Sandbox({}, {"f": 3})


def test_unicode_and_case_clashing_input_names(make):
    sb = make({"données": "d", "Data": "upper", "data": "lower"})
    assert ok(sb, "print(données, Data, data)").stdout == "d upper lower\n"


def test_large_string_input_is_ready_fast(make):
    text = ("some line of text with 'quotes' and \\ backslashes\n" * 200_000)[: 10 * 2**20]
    start = time.perf_counter()
    sb = make({"context": text})
    created = time.perf_counter() - start
    r = ok(sb, "print(len(context), context[:9], context[-10:] == %r)" % text[-10:])
    assert r.stdout == f"{len(text)} some line True\n"
    assert created < 1.0, f"10 MB input took {created:.2f} s"


def test_variables_persist_and_are_listed(make):
    sb = make({"context": "abc"}, {"tool": lambda: 1}, setup_code=SETUP)
    assert sb.variables == []
    ok(sb, "a = 1\nimport re\n_hidden = 2\ndef helper(): return a\nresult = 5")
    assert sb.variables == ["a", "re", "helper", "result"]
    r = ok(sb, "a += 1\nprint(a, helper(), result, _hidden, context)")
    assert r.stdout == "2 2 5 2 abc\n"
    ok(sb, "context = context.upper()\ndel a")
    assert sb.variables == ["re", "helper", "result"]


# ---------------------------------------------------------------- host functions


def test_host_function_args_kwargs_and_return_values(make):
    def echo(*args, **kwargs):
        return {"args": args, "kwargs": kwargs}

    def odd():
        return {
            "set": {3, 1}, 1: b"bytes", "nan": math.nan, "big": 2**70,
            "when": dt.date(2024, 1, 2), "doc": Doc(title="t", tags=[]),
        }

    sb = make({}, {"echo": echo, "odd": odd})
    r = ok(sb, "r = echo(1, 'two', [3], k={'a': None})\nprint(r)")
    assert r.stdout == "{'args': [1, 'two', [3]], 'kwargs': {'k': {'a': None}}}\n"
    assert r.callbacks == 1
    r = ok(sb, "print(odd())\nprint(echo({1, 2}, b'x', (1,)))")
    assert r.stdout == (
        "{'set': [1, 3], '1': 'bytes', 'nan': nan, 'big': 1180591620717411303424, 'when': '2024-01-02', "
        "'doc': {'title': 't', 'tags': []}}\n{'args': [[1, 2], 'x', [1]], 'kwargs': {}}\n"
    )
    assert r.callbacks == 2


def test_values_keep_dict_order_and_big_ints_both_ways(make):
    seen = []

    def keep(value):
        seen.append(value)
        return {"z": 1, "a": 2**80, "m": [value]}

    sb = make({}, {"keep": keep}, setup_code=SETUP)
    r = sb.run("r = keep({'b': 1, 'a': 2**70})\nprint(list(r), r['a'])\nSUBMIT(z=1, a=2, m=r)")
    assert r.stdout == "['z', 'a', 'm'] 1208925819614629174706176\n"
    assert seen == [{"b": 1, "a": 2**70}] and list(seen[0]) == ["b", "a"]
    assert list(r.submission) == ["z", "a", "m"] and list(r.submission["m"]) == ["z", "a", "m"]


def test_async_host_functions_are_awaited_on_the_host(make):
    import asyncio

    async def fetch(x):
        await asyncio.sleep(0.05)
        return x + 1

    sb = make({}, {"fetch": fetch})
    assert ok(sb, "print(fetch(1), fetch(x=2))").stdout == "2 3\n"


def test_host_function_errors_are_clean_and_catchable(make):
    def fail(msg):
        raise ValueError(f"bad input: {msg}")

    sb = make({}, {"fail": fail})
    r = sb.run("x = 1\nfail('zz')")
    assert r.error_kind == "exception"
    assert r.error.endswith("RuntimeError: fail: ValueError: bad input: zz")
    assert __file__ not in r.error and "Traceback (most recent call last):\n  File \"<step 1>\", line 2" in r.error
    assert "site-packages" not in r.error and "_eryx" not in r.error
    r = ok(sb, "try:\n    fail(1)\nexcept RuntimeError as e:\n    print('caught', e)")
    assert r.stdout == "caught fail: ValueError: bad input: 1\n"


def test_host_functions_run_concurrently_and_are_counted(make):
    active, peak, lock = [0], [0], threading.Lock()

    def slow(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return i * 2

    sb = make({}, {"slow": slow})
    start = time.perf_counter()
    r = ok(sb, "import asyncio\nprint(sum(await asyncio.gather(*[slow(i) for i in range(12)])))")
    assert r.stdout == "132\n"
    assert r.callbacks == 12
    assert peak[0] > 1
    assert time.perf_counter() - start < 2.5


def test_host_functions_see_the_callers_context(make):
    var = contextvars.ContextVar("span", default="none")
    sb = make({}, {"span": lambda: var.get()})
    token = var.set("run-42")
    try:
        assert ok(sb, "import asyncio\nprint(span(), await asyncio.gather(span(), span()))").stdout == (
            "run-42 ['run-42', 'run-42']\n"
        )
    finally:
        var.reset(token)
    assert ok(sb, "print(span())").stdout == "none\n"


def test_sync_looking_calls_are_awaited_across_steps(make):
    sb = make({}, {"llm_query": lambda p: f"<{p}>"})
    ok(sb, "def ask(p):\n    return llm_query(p) + '!'\n\ndef twice(p):\n    return ask(p) + ask(p)")
    assert ok(sb, "print(twice('a'))").stdout == "<a>!<a>!\n"
    assert ok(sb, "out = [ask(x) for x in 'bc']\nprint(out)").stdout == "['<b>!', '<c>!']\n"


def test_model_async_functions_and_methods_are_awaited_in_later_steps(make):
    sb = make({}, {"llm_query": lambda p: p.upper()})
    ok(
        sb,
        "async def shout(p):\n    return await llm_query(p)\n\n"
        "class Bot:\n    async def ask(self, p):\n        return await llm_query(p)\n",
    )
    assert ok(sb, "print(shout('a'), Bot().ask('b'))").stdout == "A B\n"


def test_rewrite_error_does_not_execute(make):
    sb = make({}, {"llm_query": lambda p: p})
    r = sb.run("print('ran')\nf = lambda p: llm_query(p)")
    assert r.error_kind == "rewrite"
    assert "lambda" in r.error
    assert r.stdout == "" and r.callbacks == 0


def test_callback_limit(make):
    sb = make({}, {"f": lambda: 1}, limits=SandboxLimits(max_callbacks_per_step=5))
    r = sb.run("n = 0\nfor i in range(10):\n    n += f()")
    assert r.error_kind == "callback_limit"
    assert "too many host function calls in one step (limit 5)" in r.error
    assert not r.restarted
    assert ok(sb, "print(n, f())").stdout == "5 1\n"


def test_callback_timeout_is_a_clean_error(make):
    limits = SandboxLimits(callback_timeout_s=0.3, step_timeout_s=10)
    sb = make({}, {"slow": lambda: time.sleep(1.5)}, limits=limits)
    r = sb.run("slow()")
    assert r.error_kind == "exception"
    assert r.error.endswith("RuntimeError: slow: the call took longer than 0.3 s and was abandoned")


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


# ---------------------------------------------------------------- recovery


def test_cpu_timeout_restarts_and_restores_inputs(make):
    sb = make({"context": "ctx"}, {"f": lambda: 1}, limits=FAST, setup_code=SETUP)
    ok(sb, "a = 1\nb = [2]")
    start = time.perf_counter()
    r = sb.run("print('started')\nwhile True:\n    pass")
    assert time.perf_counter() - start < 5
    assert r.error_kind == "timeout" and r.restarted
    assert r.error == "TimeoutError: the step ran longer than 1.5 s and was stopped"
    assert r.stdout == "started\n"
    assert r.lost_variables == ["a", "b"]
    assert r.notes == ["sandbox restarted after a timeout: variables lost: a, b"]
    assert sb.variables == []
    assert ok(sb, "print(context, f(), 'a' in globals())").stdout == "ctx 1 False\n"
    assert sb.run("FINAL(2)").submission == {"answer": 2}


def test_timeout_while_awaiting_a_slow_host_function(make):
    calls = []

    def slow(tag):
        calls.append(tag)
        time.sleep(2.5)
        return tag

    sb = make({}, {"slow": slow}, limits=FAST)
    r = sb.run("x = slow('first')\nprint('late output')\ny = slow('second')")
    assert r.error_kind == "timeout" and r.restarted
    assert "late output" not in r.stdout
    r = ok(sb, "import asyncio\nawait asyncio.sleep(0.5)\nprint('fresh')")
    time.sleep(0.5)
    r2 = ok(sb, "print('x' in globals())")
    assert r.stdout == "fresh\n" and r2.stdout == "False\n"
    assert calls == ["first"]


def test_no_new_host_call_after_the_deadline(make):
    sb = make({}, {"tick": lambda: time.sleep(0.4)}, limits=SandboxLimits(step_timeout_s=1.0))
    r = sb.run("for i in range(10):\n    tick()\n    print(i)")
    assert r.error_kind == "timeout" and r.restarted
    assert r.callbacks <= 4
    assert r.stdout.startswith("0\n1\n")


def test_host_call_after_the_deadline_suspends_the_step(make):
    holder = []

    def expire():  # make the step look overdue from inside a host call
        holder[0]._shared.step.deadline = 0

    sb = make({"context": "c"}, {"expire": expire, "f": lambda: 1})
    holder.append(sb)
    ok(sb, "v = 1")
    r = sb.run("expire()\nprint('between')\nf()\nprint('not reached')")
    assert r.error_kind == "timeout" and r.restarted and r.lost_variables == ["v"]
    assert r.stdout == "between\n" and r.callbacks == 2
    assert ok(sb, "print(context, f())").stdout == "c 1\n"


def test_memory_bomb_is_contained(make):
    sb = make({"context": "c"}, limits=SandboxLimits(memory_bytes=256 * 2**20, step_timeout_s=20))
    ok(sb, "keep = 1")
    r = sb.run("x = []\nwhile True:\n    x.append(bytearray(10_000_000))")
    assert r.error_kind == "memory"
    assert "MemoryError" in r.error
    ok(sb, "x = None")
    assert ok(sb, "print(context, keep if 'keep' in globals() else 'reset')").stdout in ("c 1\n", "c reset\n")


def test_crash_restarts(make):
    sb = make({"context": "c"})
    ok(sb, "v = 1")
    r = sb.run("import posix\nposix.abort()")
    assert r.error_kind == "crash" and r.restarted and r.lost_variables == ["v"]
    assert r.error.startswith("SandboxCrash") and "wasm" not in r.error
    assert ok(sb, "print(context)").stdout == "c\n"


# ---------------------------------------------------------------- isolation and lifetime


def test_no_host_files_and_read_only_inputs(make, tmp_path, monkeypatch):
    monkeypatch.setenv("RLM_TEST_SECRET", "hunter2")
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    sb = make({"context": "c", "cfg": {"a": 1}})
    code = (
        "import os\nprint(sorted(os.listdir('/inputs')))\n"
        f"for p in ['/etc/passwd', {str(secret)!r}, '/inputs/../etc/passwd']:\n"
        "    try:\n        open(p).read(); print('READ', p)\n"
        "    except OSError as e:\n        print(type(e).__name__)\n"
        "try:\n    open('/inputs/new.txt', 'w')\nexcept OSError as e:\n    print(type(e).__name__)\n"
        "print(sorted(os.environ))"
    )
    r = ok(sb, code)
    lines = r.stdout.splitlines()
    assert lines[0] == "['cfg.json', 'context.txt']"
    assert "READ" not in r.stdout
    assert lines[4] == "PermissionError"
    assert "RLM_TEST_SECRET" not in lines[5] and "'HOME'" not in lines[5]


def test_network_is_off(make):
    sb = make({})
    r = sb.run("import socket\ns = socket.socket()\ns.connect(('93.184.216.34', 80))")
    assert r.error_kind == "exception" and not r.restarted
    assert "networking not enabled" in r.error


def test_setup_code_errors_fail_construction_without_leaking(make):
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "dspy-rlm-inputs-*")))
    with pytest.raises(SandboxUnavailable, match="(?s)setup_code failed:.*NameError"):
        Sandbox({"c": "x"}, setup_code="undefined_name")
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "dspy-rlm-inputs-*"))) == before


def test_close_is_idempotent_and_final(make):
    sb = make({"c": "x"})
    folder = sb._folder
    assert os.path.isdir(folder)
    with sb:
        ok(sb, "y = 1")
    assert not os.path.exists(folder)
    sb.close()
    with pytest.raises(SandboxClosed):
        sb.run("print(1)")


def test_many_sandboxes_do_not_leak_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # only this test's folders are counted
    pattern = os.path.join(tempfile.gettempdir(), "dspy-rlm-inputs-*")
    before = set(glob.glob(pattern))
    for i in range(25):
        with Sandbox({"c": f"text {i}"}) as sb:
            assert sb.run("print(c)").stdout == f"text {i}\n"
    for i in range(5):  # dropped without close(): collected with the object
        Sandbox({"c": "x"}).run("pass")
    gc.collect()
    assert set(glob.glob(pattern)) == before == set()


def test_a_run_can_shorten_its_own_time_limit_but_not_extend_it():
    with Sandbox({}, limits=SandboxLimits(step_timeout_s=30)) as box:
        short = box.run("while True:\n    pass", timeout_s=0.5)
        assert short.error_kind == "timeout" and "0.5 s" in short.error
        assert box.run("print('next')", timeout_s=100).stdout == "next\n"
