"""The depth-2 bench's scripted server: it tells each framework's root and child steps apart,
answers each with the same logical script, and that script adds the children's values up."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

import pytest

from dspy_rlm.cli.bench import depth
from dspy_rlm.cli.bench.depth_run import check_answer, plan, setups, summarize, target_lines

OURS_SYSTEM = ("Your input fields are:\n1. `variables_info` (str)\n2. `repl_history` (str)\n3. `iteration` (str)\n"
               "Your output fields are:\n1. `reasoning` (str)\n2. `code` (str)\n\n[[ ## reasoning ## ]]\n{reasoning}\n\n"
               "[[ ## code ## ]]\n{code}\n\n[[ ## completed ## ]]")


def ours(variables: list[str], step: int) -> list[dict]:
    info = "\n\n".join(f"Variable: `{name}` (access it in your code)\nType: str" for name in variables)
    user = (f"[[ ## variables_info ## ]]\n{info}\n\n[[ ## repl_history ## ]]\nYou have not run any code yet.\n\n"
            f"[[ ## iteration ## ]]\n{step}/4; sub-model calls left: 900\n\nRespond with the corresponding output fields")
    return [{"role": "system", "content": OURS_SYSTEM}, {"role": "user", "content": user}]


def rlms(root: bool, step: int) -> list[dict]:
    metadata = "Your context is a str of 19 total characters."
    messages = [{"role": "system", "content": f"{depth.RLMS_SYSTEM}: a language model with a prompt ..."},
                {"role": "user", "content": f"Answer the following: {depth.QUERY}\n\n{metadata}" if root else metadata}]
    for turn in range(1, step + 1):
        messages.append({"role": "user", "content": f"Turn {turn}/4:"})
        if turn < step:
            messages += [{"role": "assistant", "content": "```repl\nprint(1)\n```"}, {"role": "user", "content": "1"}]
    return messages


def recursive_llm(depth_: int, step: int) -> list[dict]:
    system = f"{depth.RECURSIVE_LLM_SYSTEM} environment.\n\nDepth: {depth_}. max_depth: 2. recursive_llm ..."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": depth.QUERY}]
    for _ in range(step - 1):
        messages += [{"role": "assistant", "content": "print(1)"}, {"role": "user", "content": "1"}]
    return messages


@pytest.mark.parametrize(("messages", "turn"), [
    (ours(["context", "query"], 1), depth.Turn("dspy-rlm", "root", 1)),
    (ours(["context", "query"], 2), depth.Turn("dspy-rlm", "root", 2)),
    (ours(["prompt", "context"], 1), depth.Turn("dspy-rlm", "child", 1)),
    (ours(["prompt"], 3), depth.Turn("dspy-rlm", "child", 3)),
    (rlms(True, 1), depth.Turn("rlms", "root", 1)),
    (rlms(True, 2), depth.Turn("rlms", "root", 2)),
    (rlms(False, 2), depth.Turn("rlms", "child", 2)),
    (recursive_llm(0, 1), depth.Turn("recursive-llm", "root", 1)),
    (recursive_llm(0, 2), depth.Turn("recursive-llm", "root", 2)),
    (recursive_llm(1, 2), depth.Turn("recursive-llm", "child", 2)),
])
def test_a_request_is_recognised_by_framework_role_and_step(messages, turn):
    assert depth.classify(messages) == turn


@pytest.mark.parametrize(("messages", "problem"), [
    ([{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "hi"}], "neither"),
    ([{"role": "system", "content": OURS_SYSTEM}, {"role": "user", "content": "[[ ## question ## ]]\nhi"}], "iteration"),
    (ours(["data"], 1), "neither a `query`"),
    ([{"role": "system", "content": depth.RLMS_SYSTEM}], "no user message"),
    ([{"role": "system", "content": depth.RECURSIVE_LLM_SYSTEM}, {"role": "user", "content": "q"}], "Depth: n"),
])
def test_an_unknown_request_is_refused_with_what_was_missing(messages, problem):
    with pytest.raises(ValueError, match=problem):
        depth.classify(messages)


def test_replies_use_each_frameworks_own_format():
    ours_reply = depth.reply(depth.Turn("dspy-rlm", "child", 2))
    assert "[[ ## code ## ]]\n```python\nFINAL(" in ours_reply and ours_reply.endswith("[[ ## completed ## ]]")
    rlms_reply = depth.reply(depth.Turn("rlms", "child", 2))
    assert "```repl\n" in rlms_reply and "answer['ready'] = True" in rlms_reply
    assert depth.reply(depth.Turn("rlms", "root", 9)) == depth.reply(depth.Turn("rlms", "root", 2)).replace(
        "step 2", "step 9")  # past the script's end, the last step repeats
    assert depth.reply(depth.Turn("recursive-llm", "child", 1)).startswith("try:")  # bare code, no fences


class _Final(BaseException):
    pass


def _run_child(framework: str, context: str) -> str:
    """A child run, emulated: its two scripted steps in one namespace, as either REPL keeps it."""
    namespace: dict = {"context": context, "prompt": "Return the value", "answer": {"content": "", "ready": False}}

    def final(value):
        raise _Final(value)

    namespace["FINAL"] = final
    try:
        for code in depth.SCRIPTS[(framework, "child")]:
            exec(code, namespace)
    except _Final as done:
        return str(done.args[0])
    assert namespace["answer"]["ready"]
    return namespace["answer"]["content"]


@pytest.mark.parametrize("framework", ["dspy-rlm", "rlms", "recursive-llm"])
def test_the_script_adds_up_every_childs_value(framework):
    submitted = {}
    namespace = {
        "context": depth.root_context(),
        "answer": {"content": "", "ready": False},
        "rlm_query_batched": lambda prompts, contexts=None: [
            _run_child(framework, c) for c in (contexts if contexts is not None else prompts)],
        "SUBMIT": lambda answer: submitted.setdefault("answer", answer),
    }
    for code in depth.SCRIPTS[(framework, "root")]:
        exec(code, namespace)
    text = submitted.get("answer") or namespace["answer"]["content"]
    assert check_answer(text) == {"answer_ok": True, "child_platforms": [sys.platform], "failed_children": 0}


def test_a_failed_child_makes_the_answer_wrong():
    total = depth.expected_total() - depth.item_value(3)
    assert check_answer(f"{total} wasi 1")["answer_ok"] is False
    assert check_answer("Error: Child RLM completion failed")["answer_ok"] is False


def test_every_item_has_a_distinct_value():
    values = [depth.item_value(i) for i in range(depth.CHILDREN)]
    assert len(set(values)) == depth.CHILDREN and depth.root_context().splitlines()[17] == f"item 17: value {values[17]}"


def _post(url: str, messages: list[dict]) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/chat/completions", data=json.dumps({"messages": messages}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_server_answers_after_its_latency_and_counts_by_role():
    with depth.serve_depth(latency_s=0.05) as server:
        began = time.perf_counter()
        status, body = _post(server.base_url, rlms(False, 1))
        assert status == 200 and time.perf_counter() - began >= 0.05
        assert body["choices"][0]["message"]["content"] == depth.reply(depth.Turn("rlms", "child", 1))
        _post(server.base_url, ours(["context", "query"], 1))
        status, body = _post(server.base_url, [{"role": "user", "content": "hello"}])
        assert status == 400 and "neither a dspy-rlm, an rlms nor a recursive-llm prompt" in body["error"]["message"]
        counts = server.counts()
        assert counts["requests"] == 2 and counts["by_role"] == {"dspy-rlm/root": 1, "rlms/child": 1}
        assert counts["rejected"] == 1 and counts["rejections"][0].startswith("neither a dspy-rlm")
        server.reset(latency_s=0.0)
        assert server.counts()["requests"] == 0 and server.latency_s == 0.0


def test_the_plan_interleaves_setups_within_each_latency():
    jobs = plan(setups(16), reps=2)
    assert [(j["latency_s"], j["rep"], j["setup"]) for j in jobs[:6]] == [
        (0.0, 0, "dspy-rlm-16"), (0.0, 0, "rlms-16"), (0.0, 0, "dspy-rlm-4"), (0.0, 0, "rlms-4"),
        (0.0, 0, "recursive-llm-4"), (0.0, 1, "dspy-rlm-16")]  # recursive-llm did not finish above 4 at once
    assert len(jobs) == 20 and {(j["framework"], j["concurrency"]) for j in jobs} == {
        ("dspy-rlm", 16), ("dspy-rlm", 4), ("rlms", 16), ("rlms", 4), ("recursive-llm", 4)}


def test_ratios_compare_each_peer_with_dspy_rlm_at_the_same_concurrency():
    chosen = setups(16)
    seconds = {"dspy-rlm-16": 1.0, "rlms-16": 5.0, "dspy-rlm-4": 2.0, "rlms-4": 8.0, "recursive-llm-4": 9.0}
    jobs = [{"setup": key, "latency_s": 0.0, "result": {"call_s": t, "requests": 102, "peak_tree_mb": 100.0,
                                                         "answer_ok": key != "rlms-16", "failed_children": 0}}
            for key, t in seconds.items()]
    rows = {row["setup"]: row for row in summarize(jobs, chosen)}
    assert rows["rlms-4"]["ratio_vs_ours"] == 4.0 and rows["rlms-4"]["ratio_vs_best"] == 8.0
    assert rows["rlms-16"]["call_s"] is None and rows["rlms-16"]["ratio_vs_ours"] is None  # wrong: not timed
    [line] = target_lines(list(rows.values()))
    assert "×16" not in line and "×4: 4.00×" in line
    assert line.endswith("**met**")  # only the comparable pair counts


@pytest.mark.slow
def test_dspy_rlm_at_depth_2_runs_the_script_through_the_server_with_every_child_in_eryx():
    from dspy_rlm.cli.bench.depth_worker import run_dspy_rlm

    children = 3
    with depth.serve_depth() as server:
        result = run_dspy_rlm({"api_base": server.base_url, "context": depth.root_context(children),
                               "query": depth.QUERY, "max_iters": 4, "max_llm_calls": 100, "concurrency": 4})
        counts = server.counts()
    assert counts["rejections"] == [] and counts["by_role"] == {"dspy-rlm/child": 2 * children, "dspy-rlm/root": 2}
    assert depth.Answer.parse(result["answer"]) == depth.Answer(depth.expected_total(children), ("wasi",), 0)
    assert result["sandboxes_built"] == 1 + children and result["sandbox_types"] == ["Sandbox"]
