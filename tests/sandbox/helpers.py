"""Shared helpers for the sandbox tests: the session's setup code and step check, and the rewrite shorthand."""

from __future__ import annotations

import textwrap

from dspy_rlm.sandbox import Sandbox, StepResult
from dspy_rlm.sandbox.rewrite import make_awaitable

# ---------------------------------------------------------------- sessions

SETUP = """
def SUBMIT(**fields):
    _rlm_submit(fields)

def FINAL(answer):
    _rlm_submit({"answer": answer})

def FINAL_VAR(name):
    _rlm_submit({"answer": globals()[name]})
"""


def ok(sb: Sandbox, code: str) -> StepResult:
    r = sb.run(code)
    assert r.error is None, r.error
    return r


# ---------------------------------------------------------------- rewrite

HOST = {"llm_query", "llm_query_batched"}


def rewrite(source: str, names=HOST) -> str:
    return make_awaitable(textwrap.dedent(source), names)
