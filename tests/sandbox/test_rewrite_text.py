"""Specification of `make_awaitable`'s output: the source text each code shape is rewritten to."""

from dspy_rlm.sandbox.rewrite import make_awaitable
from tests.sandbox.helpers import HOST, rewrite


# --- text: what the rewrite produces ---------------------------------------------------


def test_direct_call_is_wrapped_in_await():
    assert rewrite("x = llm_query('a')\n") == "x = (await llm_query('a'))\n"


def test_code_without_async_names_is_returned_as_the_same_object():
    code = "x = 1\nprint(x)\n"
    assert make_awaitable(code, HOST) is code


def test_mention_without_a_call_comes_back_unchanged():
    code = "# llm_query is not called here\nf = llm_query\n"
    assert make_awaitable(code, HOST) is code


def test_code_that_does_not_parse_is_returned_unchanged():
    code = "x = llm_query('a'\n"
    assert make_awaitable(code, HOST) is code


def test_already_awaited_calls_are_not_awaited_twice():
    code = "x = await llm_query('a')\nys = await asyncio.gather(llm_query('b'))\n"
    assert make_awaitable(code, HOST) is code


def test_column_offsets_are_utf8_bytes_not_characters():
    assert rewrite('x = "héllo" + llm_query("ü")') == 'x = "héllo" + (await llm_query("ü"))'


def test_helper_becomes_async_def_and_keeps_its_decorator():
    code = rewrite("""\
        @deco
        def ask(q):
            return llm_query(q)
        """)
    assert code == "@deco\nasync def ask(q):\n    return (await llm_query(q))\n"


def test_genexp_argument_becomes_a_list_comprehension():
    assert rewrite("s = ', '.join(llm_query(p) for p in ps)") == (
        "s = ', '.join([(await llm_query(p)) for p in ps])")
    assert rewrite("n = sum((len(llm_query(p)) for p in ps), 0)") == (
        "n = sum(([len((await llm_query(p))) for p in ps]), 0)")


def test_map_over_async_function_becomes_a_list_comprehension():
    assert rewrite("rs = map(llm_query, ps)") == (
        "rs = [(await llm_query(_rlm_x)) for _rlm_x in ps]")


def test_gather_is_awaited_but_its_coroutine_arguments_are_not():
    assert rewrite("rs = asyncio.gather(*[llm_query(p) for p in ps])") == (
        "rs = (await asyncio.gather(*[llm_query(p) for p in ps]))")


def test_fstring_expressions_are_rewritten_in_place():
    assert rewrite('s = f"{llm_query(p)!r:>{w}}"') == 's = f"{(await llm_query(p))!r:>{w}}"'


def test_attribute_call_with_a_host_name_elsewhere_is_not_awaited():
    # A helper called `strip` becomes async, yet `" a ".strip()` is str.strip.
    code = rewrite("def strip(s):\n    return llm_query(s)\ny = ' a '.strip()\n")
    assert code.endswith("y = ' a '.strip()\n")


def test_async_methods_from_earlier_steps_are_named_class_dot_method():
    assert rewrite("r = bot.ask('q')", HOST | {"Bot.ask"}) == "r = (await bot.ask('q'))"
