"""The simulated model: prompt-dependent strategy choice, real code in the sandbox, a fallible sub-model.

Scores here are simulated-model scores: they check the simulator's mechanism, not a model's ability.
"""

from __future__ import annotations

import statistics
import time

import dspy
import pytest

from dspy_rlm import RLM, SimulatedLM
from dspy_rlm.core.signatures import CODE_INSTRUCTIONS
from dspy_rlm.lms.simulated.lm import make_lm
from dspy_rlm.lms.simulated.strategies import BASELINE, STRATEGIES, demo_strategy, strategy_probabilities, work_code
from dspy_rlm.lms.simulated.world import PROMPT_SEPARATOR, Stage, TaskPlan
from dspy_rlm.programs.families import FAMILIES, get_family
from dspy_rlm.programs.simulated_scores import run_once as run_simulated, strategy_demo

SIZE = 2**15
SEEDS = range(8)


def work_step(prediction) -> str:
    return next(step["code"] for step in prediction.trajectory if step["code"].startswith("# sim: work"))


# ---- how the prompt moves the strategy mix ----

def test_the_default_instructions_give_the_baseline_mix():
    assert strategy_probabilities(CODE_INSTRUCTIONS) == pytest.approx(BASELINE)


def test_instruction_markers_raise_their_strategy():
    hinted = strategy_probabilities(CODE_INSTRUCTIONS + "\nSplit the text into chunks and call llm_query_batched on them.")
    assert hinted["batched"] > 2 * BASELINE["batched"] - 0.1 and hinted["regex"] < BASELINE["regex"]
    hinted = strategy_probabilities(CODE_INSTRUCTIONS + "\nFilter with a regex (re.search) on keywords first.")
    assert max(hinted, key=hinted.get) == "regex"


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "guess"] + ["guess"])
def test_each_strategy_writes_code_that_a_demo_shows_as_that_strategy(family, strategy):
    world = get_family(family).world()
    plan = world.plan(get_family(family).make_task(2**12, 0).query)
    code = work_code(strategy, plan, "context", 50) if strategy != "guess" else "# sim: work guess\nanswer = 1  # a guess"
    assert demo_strategy(code) == strategy


def test_demos_raise_the_strategy_they_show_more_than_instructions_do():
    demo = "```python\nreplies = llm_query_batched(prompts)\n```"
    one = strategy_probabilities(CODE_INSTRUCTIONS, [demo])["batched"]
    three = strategy_probabilities(CODE_INSTRUCTIONS, [demo] * 3)["batched"]
    assert BASELINE["batched"] < one < three and three > 0.8
    assert strategy_probabilities(CODE_INSTRUCTIONS, ["```python\nprint(len(context))\n```"]) == pytest.approx(BASELINE)


def test_the_draw_is_seeded_per_task_and_seed():
    first = [work_step(run_simulated("niah", 2**12, seed)[1]).split("\n")[0] for seed in range(12)]
    again = [work_step(run_simulated("niah", 2**12, seed)[1]).split("\n")[0] for seed in range(12)]
    assert first == again and len(set(first)) >= 3


# ---- scores move with the prompt (simulated scores) ----

@pytest.mark.parametrize(("family", "best_strategy"), [("pairs", "batched"), ("multihop", "regex")])
def test_hints_raise_the_score_and_the_baseline_is_clearly_below_the_best(family, best_strategy):
    demos = [strategy_demo(family, best_strategy)] * 3
    advice = get_family(family).advice()
    baseline = statistics.mean(run_simulated(family, SIZE, seed)[2] for seed in SEEDS)
    hinted = statistics.mean(run_simulated(family, SIZE, seed, instructions=advice, demos=demos)[2] for seed in SEEDS)
    best = statistics.mean(run_simulated(family, SIZE, seed, strategy=best_strategy)[2] for seed in SEEDS)
    print(f"{family}: baseline {baseline:.2f}, hinted {hinted:.2f}, best {best:.2f} (simulated)")
    assert hinted >= baseline + 0.15, (baseline, hinted)
    assert best >= baseline + 0.25 and best >= 0.9, (baseline, best)


# ---- the strategies' code is real: it runs in the sandbox and asks the sub-model ----

@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("strategy", ["batched", "regex", "peek"])
def test_strategies_run_in_the_sandbox_through_sub_queries(family, strategy):
    task, prediction, _ = run_simulated(family, 2**13, 1, strategy=strategy)
    step = next(s for s in prediction.trajectory if s["code"].startswith(f"# sim: work {strategy}"))
    assert "ANSWER:" in step["output"] and "Traceback" not in step["output"]
    assert len(step["sub_queries"]) >= 1 and prediction.usage["sub_calls"] >= 1


def test_best_strategies_solve_their_tasks_without_sub_model_errors():
    best = {"niah": "regex", "oolong": "batched", "pairs": "batched", "multihop": "regex", "codeqa": "regex"}
    for family, strategy in best.items():
        scores = [run_simulated(family, 2**14, seed, strategy=strategy, error_rate=0.0)[2] for seed in range(3)]
        assert scores == [1.0, 1.0, 1.0], family


def test_sequential_runs_out_of_budget_and_salvages_what_it_read():
    task, prediction, _ = run_simulated("oolong", 2**14, 2, strategy="sequential")
    tags = [step["code"].split("\n")[0] for step in prediction.trajectory]
    assert tags[:3] == ["# sim: peek", "# sim: work sequential", "# sim: salvage"] and tags[-1] == "# sim: submit"
    assert "budget exhausted" in prediction.trajectory[1]["output"]
    assert prediction.usage["sub_calls"] == 50


def test_guess_reads_nothing():
    _, prediction, _ = run_simulated("codeqa", 2**13, 0, strategy="guess")
    assert prediction.usage["sub_calls"] == 0 and prediction.answer == "0"


class BrokenWorld:
    """A world whose aggregation code fails, to watch the simulator react."""

    name = "broken"

    def plan(self, question):
        return TaskPlan(stages=(Stage("Say yes.", "x"),), combine="answer = undefined_name", guess="'a guess'")

    def answer(self, prompt, mistake=False):
        return "yes"


def test_the_root_reacts_to_an_error_in_its_code():
    lm = SimulatedLM(BrokenWorld(), strategy="batched")
    with dspy.context(lm=lm):
        result = RLM("context, query -> answer", sub_lm=lm)(context="x\ny", query="anything?")
    outputs = [step["output"] for step in result.trajectory]
    assert "NameError" in outputs[1] and "NameError" in outputs[2]  # the retry fails the same way
    assert [step["reasoning"] for step in result.trajectory[2:]] == [
        "Variables were lost; run the step again.", "That step failed; answer with a guess.",
        "The answer is 'a guess'; submit it."]
    assert result.answer == "a guess"


def test_without_a_world_the_model_guesses_and_the_sub_model_says_none():
    lm = SimulatedLM()
    with dspy.context(lm=lm):
        assert RLM("context, query -> answer")(context="abc", query="what?").answer == "unknown"
    assert lm.sub_answer("anything\n---\ntext") == "NONE"


def test_the_last_iteration_submits_rather_than_running_out():
    _, prediction, _ = run_simulated("niah", 2**12, 0, strategy="regex", max_iters=2)
    assert [step["code"].split("\n")[0] for step in prediction.trajectory] == ["# sim: peek", "# sim: work guess"]
    assert prediction.trajectory[-1]["code"].endswith("SUBMIT(answer=answer)")


def test_extract_answers_with_the_last_printed_answer():
    history = "=== Step 1 ===\nCode:\n```python\n# sim: work batched\n```\nOutput (12 chars):\nANSWER: '42'"
    rlm = RLM("context, query -> answer")
    with dspy.context(lm=SimulatedLM()):
        assert rlm.extract(variables_info="(inputs)", repl_history=history).answer == "42"
        assert rlm.extract(variables_info="(inputs)", repl_history="You have not run any code yet.").answer == "unknown"


# ---- the sub-model ----

def sub_prompts(n: int) -> list[tuple[str, str]]:
    family = get_family("niah")
    prompts = []
    for seed in range(n):
        task = family.make_task(2**10, seed)
        ask = f"What is the special magic number for {task.meta['key']}? Reply with the number only, or NONE if the text does not state it."
        prompts.append((ask + PROMPT_SEPARATOR + task.context, task.answer))
    return prompts


@pytest.mark.parametrize(("rate", "low", "high"), [(0.0, 0.0, 0.0), (0.3, 0.2, 0.4), (1.0, 1.0, 1.0)])
def test_sub_model_error_rate(rate, low, high):
    lm = SimulatedLM(get_family("niah").world(), error_rate=rate, seed=1)
    prompts = sub_prompts(200)
    wrong = sum(lm.sub_answer(prompt) != gold for prompt, gold in prompts) / len(prompts)
    assert low <= wrong <= high
    assert [lm.sub_answer(p) for p, _ in prompts[:20]] == [lm.sub_answer(p) for p, _ in prompts[:20]]


def test_usage_latency_and_label():
    lm = SimulatedLM(get_family("niah").world(), latency=0.05)
    assert lm.model == "sim/niah" and "simulated" in lm.label
    started = time.perf_counter()
    with dspy.context(lm=lm, track_usage=True):
        prediction = dspy.Predict("prompt -> response")(prompt="hello")
    assert time.perf_counter() - started >= 0.05
    usage = prediction.get_lm_usage()["sim/niah"]
    assert usage["prompt_tokens"] > 20 and usage["completion_tokens"] >= 1
    assert lm.requests == []  # megabyte prompts are not kept


def test_the_request_seed_overrides_the_default_and_copies_keep_it():
    lm = SimulatedLM(get_family("niah").world(), seed=0)
    assert lm.copy(seed=5).kwargs["seed"] == 5 and lm.kwargs["seed"] == 0
    draws = {work_step(run_simulated("niah", 2**12, 3, lm_seed=s)[1]).split("\n")[0] for s in range(10)}
    assert len(draws) >= 2


def test_other_signatures_copy_their_inputs():
    with dspy.context(lm=SimulatedLM()):
        assert dspy.Predict("text -> summary")(text="short text").summary == "short text"
        assert dspy.Predict("a, b -> c")(a="first", b="second").c == "first"


def test_models_by_name():
    assert make_lm("sim/oolong", seed=2).world.name == "oolong"
    assert make_lm("sim").world is None
    with pytest.raises(ValueError, match="No simulated world named 'nope'"):
        make_lm("sim/nope")
    with pytest.raises(ValueError, match="strategy must be one of"):
        SimulatedLM(strategy="magic")
