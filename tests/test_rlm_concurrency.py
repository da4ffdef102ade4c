"""acall is truly async; one RLM instance serves many threads; copies and saved state work."""

from __future__ import annotations

import asyncio
import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import dspy

from dspy_rlm import RLM, ScriptedLM
from tests.helpers import step, steps


async def test_acall_keeps_the_event_loop_free_while_code_runs():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    lm = steps("import time\ntime.sleep(0.5)", "SUBMIT(answer='slept')")
    background = asyncio.create_task(ticker())
    with dspy.context(lm=lm):
        result = await RLM("context -> answer").acall(context="x")
    background.cancel()
    assert result.answer == "slept"
    assert ticks >= 10  # a blocked loop would tick at most a couple of times


async def test_acall_sub_queries_use_the_async_lm_path():
    sub = ScriptedLM(lambda r: {"response": r.field("prompt").upper()}, model="scripted/sub")
    lm = steps("SUBMIT(answer=''.join(llm_query_batched(['a', 'b'])) + llm_query('c'))")
    with dspy.context(lm=lm):
        result = await RLM("context -> answer", sub_lm=sub).acall(context="x")
    assert result.answer == "ABC"


def answer_with_context(request):
    """A root model whose code echoes its own call's input back."""
    return step("SUBMIT(answer=context * 2)")


def test_concurrent_calls_on_one_instance_each_get_their_own_session():
    rlm = RLM("context -> answer")
    lm = ScriptedLM(answer_with_context)
    attributes_before = set(vars(rlm))

    def call(i):
        with dspy.context(lm=lm):
            return rlm(context=f"<{i}>")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(16)))
    assert [r.answer for r in results] == [f"<{i}><{i}>" for i in range(16)]
    assert set(vars(rlm)) == attributes_before  # no per-call state was left on the module


def test_dspy_evaluate_with_threads_scores_every_example():
    devset = [dspy.Example(context=f"<{i}>", answer=f"<{i}><{i}>").with_inputs("context") for i in range(8)]
    metric = lambda gold, pred, trace=None: float(gold.answer == pred.answer)  # noqa: E731
    with dspy.context(lm=ScriptedLM(answer_with_context)):
        result = dspy.Evaluate(devset=devset, metric=metric, num_threads=4, display_progress=False)(RLM("context -> answer"))
    assert result.score == 100.0


def test_deepcopy_gives_an_independent_module():
    rlm = RLM("context -> answer")
    clone = copy.deepcopy(rlm)
    clone.generate_code.signature = clone.generate_code.signature.with_instructions("changed")
    assert rlm.generate_code.signature.instructions != "changed"
    with dspy.context(lm=steps("SUBMIT(answer='ok')")):
        assert clone(context="x").answer == "ok"


def test_save_and_load_round_trip_instructions_and_demos(tmp_path):
    rlm = RLM("context -> answer")
    rlm.generate_code.signature = rlm.generate_code.signature.with_instructions("Tuned instructions.")
    rlm.sub_query.demos = [dspy.Example(prompt="p", response="r")]
    path = tmp_path / "rlm.json"
    rlm.save(str(path))
    fresh = RLM("context -> answer")
    fresh.load(str(path))
    assert fresh.generate_code.signature.instructions == "Tuned instructions."
    assert fresh.sub_query.demos[0]["response"] == "r"
    lm = steps("SUBMIT(answer='ok')")
    with dspy.context(lm=lm):
        assert fresh(context="x").answer == "ok"
    assert "Tuned instructions." in lm.requests[0].system


# ---- many concurrent acalls (the steps must not hold the pool their sub-queries need) ----

class CallsHostSandbox:
    """A light `CodeSandbox`: each step calls the `llm_query` host function, then submits its answer.
    It blocks its thread on the sub-query as a real sandbox step does, without eryx's cost per call."""

    def __init__(self, inputs, functions, *, limits, setup_code, max_output_chars):
        self.context, self.functions = inputs["context"], functions

    variables: list = []

    def run(self, code, timeout_s=None):
        from dspy_rlm.sandbox import StepResult

        answer = self.functions["llm_query"](f"echo {self.context}")
        return StepResult(submitted=True, submission={"answer": answer})

    def set_inputs(self, inputs):
        raise NotImplementedError

    def close(self):
        pass


def gather_in_a_thread(lm, make_calls, seconds: float):
    """Run `asyncio.gather(*make_calls())` with `lm` on a fresh loop in a daemon thread: a deadlock fails
    the test after `seconds` instead of hanging the suite (asyncio.run would wait for its executor)."""
    outcome = {}

    def main():
        async def gather():
            with dspy.context(lm=lm):
                return await asyncio.gather(*make_calls())

        outcome["results"] = asyncio.run(gather())

    worker = threading.Thread(target=main, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"the concurrent acalls did not finish within {seconds:g} s (deadlock?)"
    return outcome["results"]


def echo_sub_lm() -> ScriptedLM:
    return ScriptedLM(lambda r: {"response": r.field("prompt").removeprefix("echo ")}, model="scripted/sub",
                      latency=0.01, record=False)


def test_hundreds_of_concurrent_acalls_with_sub_queries_all_finish():
    rlm = RLM("context -> answer", sub_lm=echo_sub_lm(), sandbox_factory=CallsHostSandbox)
    lm = ScriptedLM(lambda r: step("SUBMIT(answer=llm_query(context))"), record=False)

    results = gather_in_a_thread(lm, lambda: [rlm.acall(context=str(i)) for i in range(300)], seconds=120)
    assert [r.answer for r in results] == [str(i) for i in range(300)]


def test_dozens_of_concurrent_acalls_in_real_sandboxes_all_finish():
    rlm = RLM("context -> answer", sub_lm=echo_sub_lm())
    lm = ScriptedLM(lambda r: step("SUBMIT(answer=llm_query('echo ' + context))"), record=False)

    results = gather_in_a_thread(lm, lambda: [rlm.acall(context=str(i)) for i in range(32)], seconds=120)
    assert [r.answer for r in results] == [str(i) for i in range(32)]
