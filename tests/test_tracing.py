"""The span tree of an RLM call under `mlflow.dspy.autolog()`, truncation, and no spans when tracing is off."""

from __future__ import annotations

import json

import dspy
import mlflow
import pytest

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.observability import tracing
from tests.helpers import steps
from dspy_rlm.observability.tracking import use_experiment
from tests.mlflow_helpers import ancestors, mlflow_store, spans_named, traces, tree

BATCH_STEP = "a = llm_query('one')\nb = llm_query_batched(['two', 'three'])\nprint(a, b)"


def echo_sub() -> ScriptedLM:
    return ScriptedLM(lambda r: {"response": f"<{r.field('prompt')}>"}, model="scripted/sub")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with mlflow_store(tmp_path_factory.mktemp("tracing"), "tracing-tests") as uri:
        yield uri


@pytest.fixture
def fresh_experiment(store, request):
    """Each test reads back only its own traces."""
    use_experiment(request.node.name[:40] + request.node.name[-20:])  # parametrized ids differ at the end
    tracing.set_span_value_limit(2000)
    yield


def _one_trace():
    found = traces()
    assert len(found) == 1, [tree(t) for t in found]
    return found[0]


def _check_rlm_tree(trace):
    lines = tree(trace)
    assert lines[0] == "RLM.forward [CHAIN]"
    assert "  rlm.iteration.1 [CHAIN]" in lines and "  rlm.iteration.2 [CHAIN]" in lines
    # Code generation (the predictor's call and its LM call) sits under its iteration, named after the predictor.
    assert spans_named(trace, "Predict.forward") == []
    generations = spans_named(trace, "generate_code")
    assert len(generations) == 2
    assert all(ancestors(trace, s)[0].startswith("rlm.iteration.") for s in generations)
    # Every sub-query, batched ones included (made on worker threads), sits under the execution step.
    queries = spans_named(trace, "llm_query")
    assert len(queries) == 3
    assert all(ancestors(trace, s)[:2] in (["rlm.execute_code", "rlm.iteration.1"],
                                           ["llm_query_batched", "rlm.execute_code"]) for s in queries)
    assert len(spans_named(trace, "llm_query_batched")[0].inputs["prompts"]) == 2
    sub_predicts = spans_named(trace, "sub_query")
    assert len(sub_predicts) == 3 and all(ancestors(trace, s)[0] == "llm_query" for s in sub_predicts)
    return lines


@pytest.mark.parametrize("isolate_process", [False, True], ids=["in-process", "isolated"])
def test_sync_call_nests_iterations_generation_execution_and_threaded_sub_queries(fresh_experiment, isolate_process):
    with dspy.context(lm=steps(BATCH_STEP, "SUBMIT(answer=a)")):
        rlm = RLM("context -> answer", sub_lm=echo_sub(), isolate_process=isolate_process)
        assert rlm(context="ctx").answer == "<one>"
    trace = _one_trace()
    _check_rlm_tree(trace)
    execute = spans_named(trace, "rlm.execute_code")[0]
    assert execute.span_type == "TOOL"
    # Fenced, so MLflow's Markdown view shows code and output as code (not a `# comment` as a heading).
    assert execute.inputs == {"code": f"```python\n{BATCH_STEP}\n```"}
    assert set(execute.outputs) == {"output", "error", "seconds"}
    output = execute.outputs["output"]
    assert output.startswith("```\n") and output.endswith("\n```") and execute.outputs["error"] is None
    assert "<one> ['<two>', '<three>']" in output
    first, second = spans_named(trace, "rlm.iteration.1")[0], spans_named(trace, "rlm.iteration.2")[0]
    assert first.outputs["output"] == output and first.outputs["sub_queries"] == 3
    assert second.outputs["submitted"] is True and first.outputs["submitted"] is False


def test_the_extract_predictor_has_its_own_span_name(fresh_experiment):
    with dspy.context(lm=ScriptedLM([{"reasoning": "r", "code": "```python\nprint(1)\n```"}, {"answer": "late"}])):
        assert RLM("context -> answer", max_iters=1)(context="ctx").answer == "late"
    trace = _one_trace()
    assert [ancestors(trace, s)[0] for s in spans_named(trace, "extract")] == ["RLM.forward"]
    assert len(spans_named(trace, "generate_code")) == 1 and spans_named(trace, "Predict.forward") == []


def test_a_long_step_is_clipped_inside_its_fence(fresh_experiment):
    tracing.set_span_value_limit(300)
    code = "# a comment, not a heading\n" + "x = 1\n" * 400 + "print('done')"
    with dspy.context(lm=steps(code, "SUBMIT(answer='ok')")):
        RLM("context -> answer")(context="ctx")
    shown = spans_named(_one_trace(), "rlm.execute_code")[0].inputs["code"]
    assert shown.startswith("```python\n# a comment, not a heading\n") and shown.endswith("characters]\n```")
    assert len(shown) < 400


async def test_acall_nests_batched_sub_queries_made_on_the_event_loop(fresh_experiment):
    rlm = RLM("context -> answer", sub_lm=echo_sub())
    with dspy.context(lm=steps(BATCH_STEP, "SUBMIT(answer=a)")):
        assert (await rlm.acall(context="ctx")).answer == "<one>"
    _check_rlm_tree(_one_trace())


def test_concurrent_calls_under_evaluate_keep_one_trace_each(fresh_experiment):
    rlm = RLM("context -> answer", sub_lm=echo_sub())
    root = ScriptedLM(lambda r: {"reasoning": "r", "code": "```python\nSUBMIT(answer=llm_query_batched([context, context])[0])\n```"})
    devset = [dspy.Example(context=f"row{i}", answer=f"<row{i}>").with_inputs("context") for i in range(4)]
    with dspy.context(lm=root):
        result = dspy.Evaluate(devset=devset, metric=lambda g, p, t=None: g.answer == p.answer, num_threads=2)(rlm)
    assert result.score == 100.0
    found = [t for t in traces() if tree(t)[0] == "RLM.forward [CHAIN]"]
    assert len(found) == 4
    for trace in found:  # each trace holds its own row's sub-queries, none of another row's
        context = spans_named(trace, "RLM.forward")[0].inputs["context"]
        assert [s.inputs["prompt"] for s in spans_named(trace, "llm_query")] == [context, context]


def test_a_huge_context_is_truncated_in_every_span_without_any_wiring(fresh_experiment):
    mlflow.tracing.config.reset_config()  # only autolog: the RLM installs its processor itself
    context = "x" * 2_000_000
    code = "a = llm_query(context[:100000])\nprint(context[:20000])"
    with dspy.context(lm=steps(code, "SUBMIT(answer=a)")):
        RLM("context -> answer", sub_lm=echo_sub())(context=context)
    trace = _one_trace()
    assert len(trace.to_json()) < 120_000
    root = trace.data.spans[0]
    assert root.name == "RLM.forward" and root.parent_id is None
    assert root.inputs["context"].endswith("... [2,000,000 characters]") and len(root.inputs["context"]) < 2100
    assert all(len(json.dumps(s.inputs)) < 10_000 for s in trace.data.spans)


def test_the_limit_is_configurable_and_zero_keeps_everything(fresh_experiment):
    tracing.set_span_value_limit(100)
    with dspy.context(lm=steps("SUBMIT(answer='ok')")):
        RLM("context -> answer")(context="y" * 5000)
    assert len(_one_trace().data.spans[0].inputs["context"]) < 130
    use_experiment("limit-zero")
    tracing.set_span_value_limit(0)
    with dspy.context(lm=steps("SUBMIT(answer='ok')")):
        RLM("context -> answer")(context="z" * 5000)
    assert _one_trace().data.spans[0].inputs["context"] == "z" * 5000


def test_traces_without_an_rlm_are_left_alone(fresh_experiment):
    with mlflow.start_span("plain") as span:
        span.set_inputs({"text": "q" * 5000})
    assert _one_trace().data.spans[0].inputs["text"] == "q" * 5000


def test_nothing_is_traced_or_opened_when_tracing_is_off(fresh_experiment, monkeypatch):
    mlflow.dspy.autolog(disable=True, silent=True)
    try:
        def refuse(*args, **kwargs):
            raise AssertionError("a span was opened while tracing was off")

        monkeypatch.setattr(mlflow, "start_span", refuse)
        with dspy.context(lm=steps(BATCH_STEP, "SUBMIT(answer=a)")):
            assert RLM("context -> answer", sub_lm=echo_sub())(context="ctx").answer == "<one>"
        assert traces() == []
    finally:
        mlflow.dspy.autolog(log_compiles=True, log_evals=True, silent=True)
