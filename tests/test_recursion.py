"""Recursion (`max_depth >= 2`): child runs in sandboxes of their own, one budget over the tree."""

from __future__ import annotations

import dspy
import pytest

from dspy_rlm import RLM, LimitExceeded, ScriptedLM
from tests.helpers import step


def tree_lm(root_steps: list[str], child_steps: list[str] | dict[str, list[str]]) -> ScriptedLM:
    """A root model whose root run writes `root_steps` and whose child runs write `child_steps`
    (a dict picks a child's steps by a word of its prompt). A run is told apart by its variables:
    a child has `prompt`. The step number is read from the history the run was shown."""

    def answer(request):
        if "code" not in request.output_fields:  # extract, when a run's iterations ran out
            return {name: "extracted" for name in request.output_fields}
        info, history = request.field("variables_info") or "", request.field("repl_history") or ""
        done = history.count("=== Step ")
        if "Variable: `prompt`" not in info:
            return step(root_steps[min(done, len(root_steps) - 1)])
        chosen = child_steps
        if isinstance(child_steps, dict):
            prompt = info.split("Variable: `prompt`", 1)[1]
            chosen = next(steps for word, steps in child_steps.items() if word in prompt)
        return step(chosen[min(done, len(chosen) - 1)])

    return ScriptedLM(answer, model="scripted/tree")


def call(lm: ScriptedLM, sub_lm: ScriptedLM | None = None, **rlm_kwargs):
    rlm_kwargs.setdefault("max_depth", 2)
    with dspy.context(lm=lm):
        return RLM("context -> answer", sub_lm=sub_lm, **rlm_kwargs)(context="the parent's context")


def echo_sub() -> ScriptedLM:
    return ScriptedLM(lambda r: {"response": f"<{r.field('prompt')}>"}, model="scripted/sub")


def test_a_child_run_answers_rlm_query_with_what_it_submitted():
    lm = tree_lm(["a = rlm_query('double it', context={'v': 21})\nprint(a)", "SUBMIT(answer=a)"],
                 ["x = context['v'] * 2\nprint(x)", "SUBMIT(answer=str(x))"])
    result = call(lm, max_iters=3)
    first = result.trajectory[0]
    assert first["output"] == "42"
    [child] = first["children"]
    assert child["depth"] == 2 and child["answer"] == "42" and child["context_chars"] == len('{"v": 21}')
    assert [s["code"] for s in child["trajectory"]] == ["x = context['v'] * 2\nprint(x)", "SUBMIT(answer=str(x))"]


def test_children_run_in_sandboxes_of_their_own():
    lm = tree_lm(
        ["secret = 'parent-only'\nfirst = rlm_query('sibling one sets mine')\nsecond = rlm_query('sibling two looks')\n"
         "print(first, '|', second)", "SUBMIT(answer='done')"],
        {"one": ["mine = 1\nSUBMIT(answer=str(sorted(k for k in ('secret', 'context') if k in globals())))"],
         "two": ["SUBMIT(answer=str(['mine' in globals(), 'secret' in globals(), prompt]))"]})
    result = call(lm)
    assert result.trajectory[0]["output"] == "[] | [False, False, 'sibling two looks']"


def test_batched_children_come_back_in_order_and_a_failed_one_holds_its_error():
    lm = tree_lm(["print(rlm_query_batched(['a', 'b', 'c'], contexts=[1, 0, 4]))", "SUBMIT(answer='x')"],
                 ["SUBMIT(answer=str(8 // context))"])
    result = call(lm, max_iters=2)
    slots = eval(result.trajectory[0]["output"])
    # The middle child divided by zero at each of its 2 steps, then extract answered from its history.
    assert slots == ["8", "extracted", "2"]
    children = result.trajectory[0]["children"]
    assert [c["limit"] for c in children] == [None, "iterations", None]
    assert "ZeroDivisionError" in children[1]["trajectory"][0]["output"]


def test_at_the_depth_limit_rlm_query_is_a_plain_sub_query():
    lm = tree_lm(["print(rlm_query('ask the child'))", "SUBMIT(answer='x')"],
                 ["print(rlm_query('grandchild?', context='data'))", "SUBMIT(answer='y')"])
    sub = echo_sub()
    result = call(lm, sub_lm=sub)
    [child] = result.trajectory[0]["children"]
    assert child["trajectory"][0]["output"] == "<grandchild?\n\nContext:\ndata>"
    assert child["trajectory"][0]["children"] == [] and len(child["trajectory"][0]["sub_queries"]) == 1
    assert result.usage["by_depth"]["2"]["sub_calls"] == 1


def test_usage_counts_every_depth_and_in_total():
    lm = tree_lm(["print(rlm_query_batched(['a', 'b']))", "SUBMIT(answer='x')"], ["SUBMIT(answer=llm_query(prompt))"])
    usage = call(lm, sub_lm=echo_sub()).usage
    assert usage["by_depth"]["1"]["root_calls"] == 2 and usage["by_depth"]["2"]["root_calls"] == 2
    assert usage["by_depth"]["2"]["sub_calls"] == 2
    assert usage["root_calls"] == 4 and usage["sub_calls"] == 2


def test_one_call_budget_covers_the_tree_and_ends_as_on_limit_says():
    # Each child writes 2 steps (2 model calls); 3 children would spend 6 of the 4 calls allowed.
    children = ["x = 1\nprint(x)", "SUBMIT(answer='ok')"]
    roots = ["for word in 'abc':\n    print(rlm_query(word))", "print(rlm_query('again'))", "SUBMIT(answer='late')"]
    with pytest.raises(LimitExceeded) as raised:
        call(tree_lm(roots, children), max_llm_calls=4, on_limit="raise", max_iters=5)
    assert raised.value.limit == "sub_calls"
    assert raised.value.usage["by_depth"]["2"]["root_calls"] == 4  # not one call more than allowed
    result = call(tree_lm(roots, children), max_llm_calls=4, on_limit="return", max_iters=5)
    assert result.limit == "sub_calls" and result.usage["by_depth"]["2"]["root_calls"] == 4
    assert "budget exhausted" in result.trajectory[0]["output"]


@pytest.mark.parametrize("attempt", [
    "import os\nos.environ['RLM_MAX_DEPTH'] = '9'\nos.environ['MAX_DEPTH'] = '9'",
    "globals()['max_depth'] = 9\nmax_depth = 9\ndepth = 0",
    "import builtins\nbuiltins.max_depth = 9\nrlm_query.__dict__['depth'] = 0" ,
])
def test_model_code_cannot_raise_its_depth(attempt):
    lm = tree_lm(["print(rlm_query('go'))", "SUBMIT(answer='x')"],
                 [f"{attempt}\nprint(rlm_query('deeper?'))", "SUBMIT(answer='y')"])
    result = call(lm, sub_lm=echo_sub())
    [child] = result.trajectory[0]["children"]
    assert child["trajectory"][0]["children"] == []  # no grandchild run: a sub-query answered
    assert child["trajectory"][0]["output"].endswith("<deeper?>")


def test_model_code_cannot_raise_its_budget_by_patching_the_functions():
    patch = ("import os\nos.environ['MAX_LLM_CALLS'] = '1000'\n"
             "real = llm_query\nllm_query = lambda p: real(p)\nglobals()['max_llm_calls'] = 1000\n"
             "answers = []\nfor i in range(4):\n    try:\n        answers.append(llm_query(str(i)))\n"
             "    except Exception as error:\n        answers.append('refused' if 'budget exhausted' in str(error) else str(error))\n"
             "print(answers)")
    lm = tree_lm(["print(rlm_query('spend'))", "SUBMIT(answer='x')"], [patch, "SUBMIT(answer='y')"])
    result = call(lm, sub_lm=echo_sub(), max_llm_calls=3)
    [child] = result.trajectory[0]["children"]
    # One call went to the child's step, two to sub-queries; the rest were refused by the host.
    assert child["trajectory"][0]["output"].startswith("['<0>', '<1>', 'refused', 'refused']")


def test_depth_one_has_no_rlm_query():
    lm = tree_lm(["print(rlm_query('x'))", "SUBMIT(answer='x')"], ["SUBMIT(answer='y')"])
    result = call(lm, max_depth=1)
    assert "NameError" in result.trajectory[0]["output"] and "rlm_query" in result.trajectory[0]["output"]


def test_child_runs_are_bounded_by_live_sandboxes_per_depth():
    lm = tree_lm(["print(rlm_query_batched([str(i) for i in range(6)]))", "SUBMIT(answer='x')"],
                 ["SUBMIT(answer=prompt)"])
    result = call(lm, max_live_sandboxes=2, max_concurrency=6)
    assert eval(result.trajectory[0]["output"]) == [str(i) for i in range(6)]


def test_bad_recursion_arguments_name_the_fix():
    lm = tree_lm(["rlm_query_batched(['a', 'b'], contexts=[1])"], ["SUBMIT(answer='y')"])
    output = call(lm, max_iters=1, on_limit="return").trajectory[0]["output"]
    assert "contexts must be a list as long as prompts (2)" in output
    with pytest.raises(ValueError, match="max_depth must be a positive integer"):
        RLM("context -> answer", max_depth=0)


def test_a_child_ends_at_its_own_share_and_its_siblings_still_run():
    # The first child asks one sub-query per item (a runaway); its share stops it, not the tree's budget.
    runaway = ("got = []\nfor i in range(30):\n    try:\n        got.append(llm_query(str(i)))\n"
               "    except Exception as error:\n        print(str(error)[:60])\n        break\nSUBMIT(answer=str(len(got)))")
    lm = tree_lm(["print(rlm_query_batched(['runaway', 'calm']))", "SUBMIT(answer='x')"],
                 {"runaway": [runaway], "calm": ["SUBMIT(answer=llm_query('one'))"]})
    result = call(lm, sub_lm=echo_sub(), max_llm_calls=40, max_child_llm_calls=5, max_concurrency=1)
    runaway_child, calm_child = result.trajectory[0]["children"]
    assert runaway_child["answer"] == "4"  # 1 model call + 4 sub-queries = its 5
    assert "share of the call" in runaway_child["trajectory"][0]["output"]
    assert calm_child["answer"] == "<one>"


def test_a_child_out_of_its_share_ends_at_its_limit_and_the_parent_is_told():
    lm = tree_lm(["print(rlm_query_batched(['a']))", "SUBMIT(answer='x')"],
                 ["r = llm_query('one')\nprint(r)", "SUBMIT(answer=r)"])
    result = call(lm, sub_lm=echo_sub(), max_child_llm_calls=2, on_limit="return")
    [child] = result.trajectory[0]["children"]
    assert child["limit"] == "sub_calls" and "without an answer" in child["error"]
    assert result.trajectory[0]["output"].startswith("['[ERROR]") and "without an answer" in result.trajectory[0]["output"]


def test_siblings_failed_steps_do_not_end_each_other():
    lm = tree_lm(["print(rlm_query_batched(['1', '2', '3']))", "SUBMIT(answer='x')"],
                 ["print(undefined_name)", "SUBMIT(answer=prompt)"])
    result = call(lm, max_consecutive_errors=2, max_concurrency=3)
    assert eval(result.trajectory[0]["output"]) == ["1", "2", "3"]


async def test_a_childs_async_tools_run_on_the_callers_loop():
    import asyncio

    loops = []

    async def where() -> str:
        """Say which loop runs this tool."""
        loops.append(asyncio.get_running_loop())
        return "ok"

    lm = tree_lm(["print(rlm_query('go'))", "SUBMIT(answer='x')"], ["SUBMIT(answer=where())"])
    with dspy.context(lm=lm):
        await RLM("context -> answer", max_depth=2, tools=[where]).acall(context="c")
    assert loops == [asyncio.get_running_loop()]
