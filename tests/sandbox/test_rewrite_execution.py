"""Specification of `make_awaitable` at run time: rewritten sync code runs and gives the answers sync code would."""

# Each test rewrites a code shape and then executes it for real, in a harness that
# mimics the sandbox: persistent globals, async `llm_query` / `llm_query_batched`,
# and compilation with top-level await allowed.

import ast
import asyncio
import inspect
import textwrap
import traceback

import pytest

from dspy_rlm.sandbox.rewrite import make_awaitable


async def llm_query(prompt):
    await asyncio.sleep(0)  # a real suspension point, as over the host boundary
    return f"<{prompt}>"


async def llm_query_batched(prompts):
    return [f"<{p}>" for p in prompts]


class FakeSandbox:
    """Persistent globals, async host functions, and the guest's way of running a step."""

    def __init__(self) -> None:
        self.globals = {
            "asyncio": asyncio, "llm_query": llm_query, "llm_query_batched": llm_query_batched,
        }
        self.code = ""  # the last rewritten step

    def async_names(self) -> set[str]:
        # As the caller does: host names plus coroutine functions left by earlier steps.
        return {n for n, v in self.globals.items() if inspect.iscoroutinefunction(v)}

    async def run(self, source: str) -> dict:
        source = textwrap.dedent(source)
        self.code = make_awaitable(source, self.async_names())
        assert self.code.count("\n") == source.count("\n"), "line numbers must not move"
        code = compile(self.code, "<rlm>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if code.co_flags & inspect.CO_COROUTINE:
            await eval(code, self.globals)
        else:
            exec(code, self.globals)
        return self.globals


@pytest.fixture
def sandbox() -> FakeSandbox:
    return FakeSandbox()


# --- behaviour: the rewritten code runs and gives the answers sync code would ----------


async def test_top_level_call_and_print(sandbox, capsys):
    await sandbox.run("print(llm_query('hi'))\nprint('done')\n")
    assert capsys.readouterr().out == "<hi>\ndone\n"


async def test_batched_host_call(sandbox):
    ns = await sandbox.run("rs = llm_query_batched(['a', 'b'])")
    assert ns["rs"] == ["<a>", "<b>"]


async def test_non_ascii_line_runs(sandbox):
    ns = await sandbox.run('x = "héllo" + llm_query("ü")')
    assert ns["x"] == "héllo<ü>"


async def test_helpers_are_awaited_transitively_whatever_the_definition_order(sandbox):
    ns = await sandbox.run("""\
        def summarize(doc):
            return shout(ask(doc))

        def shout(s):
            return s.upper()

        def ask(q):
            return llm_query(q)

        result = summarize("doc")
        """)
    assert ns["result"] == "<DOC>"
    assert "def shout" in sandbox.code and "async def shout" not in sandbox.code


async def test_helper_from_an_earlier_step_is_awaited_in_a_later_step(sandbox):
    await sandbox.run("def ask(q):\n    return llm_query('q:' + q)\n")
    assert inspect.iscoroutinefunction(sandbox.globals["ask"])
    ns = await sandbox.run("answer = ask('x').upper()")
    assert ns["answer"] == "<Q:X>"


async def test_sync_redefinition_replaces_an_async_helper_from_an_earlier_step(sandbox):
    await sandbox.run("def ask(q):\n    return llm_query(q)\n")
    ns = await sandbox.run("def ask(q):\n    return q * 2\nr = ask('ab')\n")
    assert ns["r"] == "abab"


async def test_recursive_helper(sandbox):
    ns = await sandbox.run("""\
        def chain(q, n):
            return q if n == 0 else chain(llm_query(q), n - 1)
        r = chain("x", 3)
        """)
    assert ns["r"] == "<<<x>>>"


async def test_methods_of_a_user_class(sandbox):
    ns = await sandbox.run("""\
        class Bot:
            def __init__(self, name):
                self.name = name

            def ask(self, q):
                return llm_query(self.name + q)

            def twice(self, q):
                return [self.ask(q), self.ask(q + "!")]

        r = Bot("b:").twice("q")
        """)
    assert ns["r"] == ["<b:q>", "<b:q!>"]


async def test_decorated_helper(sandbox):
    ns = await sandbox.run("""\
        import functools

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return fn(*args)
            return wrapper

        @logged
        def ask(q):
            return llm_query(q)

        r = ask("d")
        """)
    assert ns["r"] == "<d>"


async def test_while_loop_condition_and_body(sandbox):
    ns = await sandbox.run("""\
        out = []
        while len(out) < 3 and llm_query(len(out)) != "<9>":
            out.append(llm_query(len(out)))
        """)
    assert ns["out"] == ["<0>", "<1>", "<2>"]


async def test_if_condition_and_conditional_expression(sandbox):
    ns = await sandbox.run("""\
        if llm_query("a") == "<a>":
            hit = llm_query("yes") if True else llm_query("no")
        """)
    assert ns["hit"] == "<yes>"


async def test_try_except_finally_with_and_return(sandbox):
    ns = await sandbox.run("""\
        import contextlib

        def parse(q):
            try:
                return int(llm_query(q))
            except ValueError:
                with contextlib.nullcontext(llm_query("fallback")) as v:
                    return v
            finally:
                log.append(llm_query("done"))

        log = []
        r = parse("1")
        """)
    assert ns["r"] == "<fallback>"
    assert ns["log"] == ["<done>"]


async def test_fstring(sandbox):
    ns = await sandbox.run('p = "a"\ns = f"answer: {llm_query(p)!r} {llm_query(p + "b")}"\n')
    assert ns["s"] == "answer: '<a>' <ab>"


async def test_list_dict_and_set_comprehensions(sandbox):
    ns = await sandbox.run("""\
        ps = ["a", "b"]
        xs = [llm_query(p) for p in ps if llm_query(p) != "<b>"]
        d = {p: llm_query(p) for p in ps}
        s = {llm_query(p) for p in ps}
        nested = [[llm_query(a) for a in row] for row in [ps, ps[:1]]]
        """)
    assert ns["xs"] == ["<a>"]
    assert ns["d"] == {"a": "<a>", "b": "<b>"}
    assert ns["s"] == {"<a>", "<b>"}
    assert ns["nested"] == [["<a>", "<b>"], ["<a>"]]


async def test_comprehension_inside_a_helper(sandbox):
    ns = await sandbox.run("""\
        def ask_all(ps):
            return [llm_query(p) for p in ps]
        r = ask_all(["a", "b"])
        """)
    assert ns["r"] == ["<a>", "<b>"]


async def test_generator_expressions_are_consumed_as_lists(sandbox):
    ns = await sandbox.run("""\
        ps = ["a", "bb"]
        joined = "\\n".join(llm_query(p) for p in ps)
        total = sum(len(llm_query(p)) for p in ps)
        total2 = sum((len(llm_query(p)) for p in ps), 100)
        lazy = (llm_query(p) for p in ps)
        items = list(lazy)
        any_b = any(llm_query(p) == "<bb>" for p in ps)
        """)
    assert ns["joined"] == "<a>\n<bb>"
    assert ns["total"] == 7
    assert ns["total2"] == 107
    assert ns["items"] == ["<a>", "<bb>"]
    assert ns["any_b"] is True


async def test_map_over_host_and_user_functions(sandbox):
    ns = await sandbox.run("""\
        def ask(q):
            return llm_query(q).upper()
        rs = list(map(llm_query, ["a", "b"]))
        us = map(ask, ("c",))
        kept = list(map(str.upper, ["e"]))
        """)
    assert ns["rs"] == ["<a>", "<b>"]
    assert ns["us"] == ["<C>"]  # documented: map over an async function becomes a list
    assert ns["kept"] == ["E"]


async def test_gather_runs_coroutines_concurrently_without_double_await(sandbox):
    ns = await sandbox.run("""\
        ps = ["a", "b"]
        r1 = asyncio.gather(*[llm_query(p) for p in ps])
        r2 = await asyncio.gather(llm_query("c"), llm_query("d"))
        from asyncio import gather
        r3 = gather(*map(llm_query, ps))
        """)
    assert ns["r1"] == ns["r3"] == ["<a>", "<b>"]
    assert ns["r2"] == ["<c>", "<d>"]


async def test_executor_map_runs_the_calls_in_turn(sandbox):
    ns = await sandbox.run("""\
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(4) as pool:
            rs = list(pool.map(llm_query, ["a", "b"]))
        """)
    assert ns["rs"] == ["<a>", "<b>"]


async def test_generator_of_coroutines_passed_to_gather_stays_lazy(sandbox):
    ns = await sandbox.run("rs = asyncio.gather(*(llm_query(p) for p in 'ab'))")
    assert sandbox.code == "rs = (await asyncio.gather(*(llm_query(p) for p in 'ab')))"
    assert ns["rs"] == ["<a>", "<b>"]


async def test_model_written_async_generator_is_iterated_not_awaited(sandbox):
    ns = await sandbox.run("""\
        async def answers(ps):
            for p in ps:
                yield llm_query(p)
        rs = [a async for a in answers("ab")]
        """)
    assert ns["rs"] == ["<a>", "<b>"]


async def test_tasks_are_created_unawaited_and_gathered_later(sandbox):
    ns = await sandbox.run("""\
        tasks = [asyncio.create_task(llm_query(p)) for p in "ab"]
        done = asyncio.gather(*tasks)
        one = asyncio.wait_for(llm_query("c"), timeout=5)
        """)
    assert ns["done"] == ["<a>", "<b>"]
    assert ns["one"] == "<c>"


async def test_asyncio_run_of_a_model_written_main(sandbox):
    ns = await sandbox.run("""\
        async def main():
            return await llm_query("m")
        r = asyncio.run(main())
        """)
    assert ns["r"] == "<m>"


async def test_model_written_async_def_is_kept_and_its_calls_awaited(sandbox):
    ns = await sandbox.run("""\
        async def ask(q):
            return llm_query(q)
        r = ask("a")
        """)
    assert "async def ask" in sandbox.code and "async async" not in sandbox.code
    assert ns["r"] == "<a>"


async def test_nested_sync_function_inside_an_async_function(sandbox):
    ns = await sandbox.run("""\
        async def main(ps):
            def one(p):
                return llm_query(p)
            return [one(p) for p in ps]
        r = main(["x"])
        """)
    assert ns["r"] == ["<x>"]


async def test_nested_helper_inside_a_sync_function(sandbox):
    ns = await sandbox.run("""\
        def outer(ps):
            def inner(p):
                return llm_query(p)
            out = []
            for p in ps:
                out.append(inner(p))
            return out
        r = outer("ab")
        """)
    assert ns["r"] == ["<a>", "<b>"]


async def test_sync_def_with_a_model_written_await_becomes_async(sandbox):
    ns = await sandbox.run("def ask(q):\n    return await llm_query(q)\nr = ask('a')\n")
    assert ns["r"] == "<a>"


async def test_runtime_error_reports_the_original_line_number(sandbox):
    source = """\
        def ask(q):
            return llm_query(q)

        ps = [ask(p) for p in "ab"]
        x = "".join(llm_query(p) for p in ps)
        boom = 1 / 0
        """
    with pytest.raises(ZeroDivisionError) as info:
        await sandbox.run(source)
    frame = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (frame.filename, frame.lineno) == ("<rlm>", 6)


async def test_multi_line_map_keeps_following_lines_in_place(sandbox):
    with pytest.raises(NameError) as info:
        await sandbox.run("rs = map(\n    llm_query,  # ask each\n    ['a'],\n)\nmissing\n")
    assert traceback.extract_tb(info.value.__traceback__)[-1].lineno == 5
    assert sandbox.globals["rs"] == ["<a>"]


async def test_windows_line_endings(sandbox):
    ns = await sandbox.run("def ask(q):\r\n    return llm_query(q)\r\nr = ask('w')\r\n")
    assert ns["r"] == "<w>"
