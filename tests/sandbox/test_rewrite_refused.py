"""Specification of the code shapes `make_awaitable` refuses, and the RewriteError messages it gives."""

import pytest

from dspy_rlm.errors import RewriteError
from tests.sandbox.helpers import rewrite


# --- errors: shapes that cannot be awaited ---------------------------------------------


def test_call_inside_lambda_is_an_error_naming_line_function_and_fix():
    with pytest.raises(RewriteError) as info:
        rewrite("xs = ['a']\nys = sorted(xs, key=lambda x: llm_query(x))\n")
    assert str(info.value) == (
        "line 2: llm_query(...) is called inside a lambda, where it cannot run; "
        "use a def function or a for loop instead.")


def test_helper_call_inside_lambda_is_an_error_too():
    with pytest.raises(RewriteError, match=r"line 3: score\(\.\.\.\) is called inside a lambda"):
        rewrite("def score(x):\n    return llm_query(x)\nbest = max(xs, key=lambda x: score(x))\n")


def test_call_directly_in_a_class_body_is_an_error():
    with pytest.raises(RewriteError, match=r"line 2: llm_query\(\.\.\.\) is called directly "
                                           r"in the body of class Config.*inside a method"):
        rewrite("class Config:\n    answer = llm_query('q')\n")


def test_generator_that_needs_to_await_is_an_error_suggesting_a_list():
    with pytest.raises(RewriteError, match=r"line 1: generator function g\(\) calls "
                                           r"llm_query\(\.\.\.\) on line 3.*return it instead"):
        rewrite("def g(ps):\n    for p in ps:\n        yield llm_query(p)\n")


def test_rewrite_error_is_a_value_error():
    assert issubclass(RewriteError, ValueError)
