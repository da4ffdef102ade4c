"""Sandbox steps: inputs and persistent state arrive in the guest, and host functions are called from it."""

from __future__ import annotations

import contextvars
import datetime as dt
import math
import threading
import time

import pytest
from pydantic import BaseModel

from dspy_rlm.sandbox import Sandbox, SandboxLimits
from tests.sandbox.helpers import SETUP, ok

pytestmark = pytest.mark.usefixtures("eryx_factory")


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
