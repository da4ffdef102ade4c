"""DSPy's four code-running modules on `EryxInterpreter`: dspy.RLM (with `import dspy` sub-agents),
dspy.Flex (baseline and a GEPA-rewritten source), dspy.CodeAct and dspy.ProgramOfThought.

The models are DSPy's `DummyLM` (scripted answers); every number here is offline.
"""

from __future__ import annotations

import logging
import textwrap

import dspy
import pytest
from dspy.primitives.code_interpreter import CodeInterpreterError
from dspy.primitives.facade import FacadeInvocation
from dspy.utils import DummyLM

from dspy_rlm import EryxInterpreter

pytestmark = pytest.mark.usefixtures("eryx_factory")


class Made:
    """A factory that keeps the interpreters it made (to see which runtime a module used)."""

    def __init__(self, factory=EryxInterpreter):
        self.factory, self.made = factory, []
        self.execution_instructions = factory.execution_instructions

    def __call__(self):
        self.made.append(self.factory())
        return self.made[-1]


REWRITTEN = textwrap.dedent('''
    class QAModule(dspy.Module):
        def __init__(self):
            super().__init__()
            self.draft = dspy.ChainOfThought(dspy.Signature("question -> answer", "Answer briefly."))

        def forward(self, **inputs):
            def ask(question):  # a nested helper: the facade call happens two frames down
                return self.draft(question=question).answer

            print("debugging output is not the result")
            return dspy.Prediction(answer=ask(inputs["question"]).upper())
''').strip()


def test_flex_baseline_runs_on_eryx():
    factory = Made()
    flex = dspy.Flex("question -> answer", interpreter_factory=factory)
    with dspy.context(lm=DummyLM([{"answer": "4"}])):
        assert flex(question="2 + 2?").answer == "4"
    assert len(factory.made) == 1 and factory.made[0]._closed  # one interpreter per forward, shut down


def test_flex_rewritten_source_calls_predictors_from_a_nested_helper():
    flex = dspy.Flex("question -> answer", interpreter_factory=EryxInterpreter)
    flex._bind_code(REWRITTEN)  # what GEPA does with a proposal
    lm = DummyLM([{"reasoning": "short", "answer": "four"}])
    with dspy.context(lm=lm):
        assert flex(question="2 + 2?").answer == "FOUR"
    assert "Answer briefly." in lm.history[-1]["messages"][0]["content"]  # the host built the real predictor


def test_flex_predictor_budget_is_dspys():
    source = REWRITTEN.replace('ask(inputs["question"]).upper()', 'ask("a") + ask("b")')
    flex = dspy.Flex("question -> answer", interpreter_factory=EryxInterpreter, max_predictor_calls=1)
    flex._bind_code(source)
    with dspy.context(lm=DummyLM([{"reasoning": "r", "answer": "x"}] * 2)):
        with pytest.raises(CodeInterpreterError, match="predictor-call budget"):
            flex(question="q")


def test_a_facade_call_from_a_nested_helper_function_works():
    with EryxInterpreter() as interpreter, dspy.context(lm=DummyLM([{"answer": "deep"}])):
        FacadeInvocation({}, EryxInterpreter, None).install(interpreter)
        output = interpreter.execute(textwrap.dedent('''
            import dspy
            class Outer(dspy.Module):
                def __init__(self):
                    self.p = dspy.Predict("q -> answer")
                @property
                def answer(self):
                    def level_one():
                        def level_two():
                            return self.p(q="hi").answer
                        return level_two()
                    return level_one()
            print(Outer().answer)
        '''))
    assert output == "deep\n"


def test_rlm_sub_agent_built_with_import_dspy(caplog):
    code = ("import dspy\n"
            "helper = dspy.Predict('question -> answer')\n"
            "print(helper(question='inner?').answer)")
    lm = DummyLM([
        {"reasoning": "r", "code": f"```python\n{code}\n```"},
        {"answer": "from the sub-agent"},
        {"reasoning": "r", "code": "```python\nSUBMIT(answer='done')\n```"},
    ])
    rlm = dspy.RLM("question -> answer", max_iters=3, max_llm_calls=5, interpreter_factory=EryxInterpreter)
    with caplog.at_level(logging.WARNING, logger="dspy.predict.rlm"), dspy.context(lm=lm):
        result = rlm(question="q")
    assert result.answer == "done"
    assert result.trajectory[0]["output"] == "from the sub-agent\n"
    assert "sub-agents are unavailable" not in caplog.text  # the per-call warning is gone


def test_rlm_sub_agent_calls_count_against_max_llm_calls():
    code = ("import dspy\n"
            "helper = dspy.Predict('question -> answer')\n"
            "print(helper(question='1').answer)\n"
            "print(helper(question='2').answer)")
    lm = DummyLM([
        {"reasoning": "r", "code": f"```python\n{code}\n```"},
        {"answer": "one"},
        {"reasoning": "r", "code": "```python\nSUBMIT(answer='done')\n```"},
    ])
    rlm = dspy.RLM("question -> answer", max_iters=3, max_llm_calls=1, interpreter_factory=EryxInterpreter)
    with dspy.context(lm=lm):
        result = rlm(question="q")
    first = result.trajectory[0]["output"]
    assert first.startswith("[Error] one\n") and "LLM call limit" in first  # SandboxLM metering, DSPy's budget


def add(a: int, b: int) -> int:
    """Add two integers."""  # CodeAct runs its tools' source in the interpreter: module level, not nested
    return a + b


def test_code_act_runs_its_tools_in_eryx():
    lm = DummyLM([
        {"reasoning": "r", "generated_code": "```python\nprint(add(2, 3))\n```", "finished": False},
        {"reasoning": "r", "generated_code": "```python\nprint('checked')\n```", "finished": True},
        {"reasoning": "r", "answer": "5"},
    ])
    factory = Made()
    with dspy.context(lm=lm):
        result = dspy.CodeAct("question -> answer", tools=[add], interpreter_factory=factory)(question="2 + 3?")
    assert result.answer == "5"
    assert result.trajectory["code_output_0"] == '"5\\n"'
    assert len(factory.made) == 1


def test_program_of_thought_runs_in_eryx():
    lm = DummyLM([
        {"reasoning": "r", "generated_code": "```python\nresult = sum(range(10))\nprint(result)\n```"},
        {"reasoning": "r", "answer": "45"},
    ])
    factory = Made()
    with dspy.context(lm=lm):
        result = dspy.ProgramOfThought("question -> answer", interpreter_factory=factory)(question="sum 0..9?")
    assert result.answer == "45"
    assert "45" in lm.history[-1]["messages"][-1]["content"]  # the code's output reached the answer step
    assert len(factory.made) == 1


def test_configure_interpreter_factory_reaches_all_four_modules():
    factory = Made()
    answers = [
        {"answer": "flex"},  # dspy.Flex baseline
        {"reasoning": "r", "generated_code": "```python\nprint(add(1, 1))\n```", "finished": True},
        {"reasoning": "r", "answer": "code-act"},
        {"reasoning": "r", "generated_code": "```python\nprint(6 * 7)\n```"},
        {"reasoning": "r", "answer": "pot"},
        {"reasoning": "r", "code": "```python\nimport dspy\nSUBMIT(answer='rlm')\n```"},
    ]
    with dspy.context(lm=DummyLM(answers), interpreter_factory=factory):
        results = [
            dspy.Flex("question -> answer")(question="q").answer,
            dspy.CodeAct("question -> answer", tools=[add])(question="q").answer,
            dspy.ProgramOfThought("question -> answer")(question="q").answer,
            dspy.RLM("question -> answer", max_iters=2)(question="q").answer,
        ]
    assert results == ["flex", "code-act", "pot", "rlm"]
    assert len(factory.made) == 4 and all(isinstance(i, EryxInterpreter) for i in factory.made)


class Echo(dspy.Signature):
    """Repeat the question in capitals."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


PROPOSAL = textwrap.dedent('''
    class EchoModule(dspy.Module):
        def __init__(self):
            super().__init__()

        def forward(self, **inputs):
            return dspy.Prediction(answer=inputs["question"].upper())
''').strip()


@pytest.mark.slow
def test_gepa_optimises_flex_code_end_to_end_on_eryx():
    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return 1.0 if getattr(pred, "answer", None) == gold.answer else 0.0

    examples = [dspy.Example(question=q, answer=q.upper()).with_inputs("question") for q in ("ab", "cd", "ef")]
    student = dspy.Flex(Echo, interpreter_factory=EryxInterpreter)
    task_lm = DummyLM([{"answer": "wrong"}] * 40)
    reflection_lm = DummyLM([{"revised_source": f"```python\n{PROPOSAL}\n```"}] * 5)
    optimizer = dspy.GEPA(metric=metric, reflection_lm=reflection_lm, max_metric_calls=12, seed=0)
    with dspy.context(lm=task_lm):
        optimized = optimizer.compile(student, trainset=examples, valset=examples)
        assert optimized.module_src.strip() == PROPOSAL  # the rewritten source won
        assert optimized(question="gh").answer == "GH"  # and runs on eryx
    assert student.module_src != PROPOSAL  # the baseline was not edited in place


def test_facade_off_keeps_the_network_closed_and_dspy_rlm_degrades(caplog):
    interpreter = EryxInterpreter(facade=False)
    with interpreter:
        assert interpreter.execute("print(1)") == "1\n"
        assert interpreter._sandbox._bridge is None  # no loopback endpoint, no network
    lm = DummyLM([{"reasoning": "r", "code": "```python\nSUBMIT(answer='ok')\n```"}])
    rlm = dspy.RLM("question -> answer", max_iters=2, interpreter_factory=EryxInterpreter.factory(facade=False))
    with caplog.at_level(logging.WARNING, logger="dspy.predict.rlm"), dspy.context(lm=lm):
        assert rlm(question="q").answer == "ok"
    assert "sub-agents are unavailable on EryxInterpreter" in caplog.text
