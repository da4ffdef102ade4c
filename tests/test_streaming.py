"""`dspy.streamify` on an RLM: status messages per step, streamed fields and the final answer, offline.

The scripted and simulated models stream through DSPy's real streaming path (the engine's
`stream`), and the simulated OpenAI server answers `stream: true` with server-sent events,
so a real `dspy.LM` streams against it too.
"""

from __future__ import annotations

import json
import urllib.request

import dspy
import pytest
from dspy.streaming import StatusMessage, StatusMessageProvider, StreamListener, StreamResponse

from dspy_rlm import RLM, ScriptedLM, SimulatedLM
from dspy_rlm.lms.simulated.server import serve_simulated
from tests.helpers import step

pytestmark = pytest.mark.usefixtures("eryx_factory")


class StepStatus(StatusMessageProvider):
    """Says which predictor of the RLM starts (one message per step)."""

    def module_start_status_message(self, instance, inputs):
        iteration = inputs.get("kwargs", {}).get("iteration") if isinstance(instance, dspy.Predict) else None
        return f"writing step {iteration.split(";")[0]}" if iteration else None


def collect(streamer, **inputs) -> list:
    """Run a streamified program to the end (sync generator) and return every item it yielded."""
    return list(dspy.streaming.apply_sync_streaming(streamer(**inputs)))


async def acollect(streamer, **inputs) -> list:
    return [item async for item in streamer(**inputs)]


def prediction_of(items: list) -> dspy.Prediction:
    predictions = [item for item in items if isinstance(item, dspy.Prediction)]
    assert len(predictions) == 1, items
    return predictions[0]


def chunks_for(items: list, field: str) -> list[StreamResponse]:
    return [item for item in items if isinstance(item, StreamResponse) and item.signature_field_name == field]


def two_steps() -> ScriptedLM:
    return ScriptedLM([step("total = 40 + 2\nprint(total)", "count"), step("SUBMIT(answer=str(total))", "done")])


# ------------------------------------------------------------------ the scripted model streams


def test_streamify_runs_an_rlm_on_a_scripted_model_and_yields_the_prediction():
    """Before: LMFailure "'_ScriptEngine' object has no attribute 'stream'"."""
    rlm = RLM("question -> answer", max_iters=3)
    with dspy.context(lm=two_steps()):
        items = collect(dspy.streamify(rlm), question="q")
    assert prediction_of(items).answer == "42"


def test_status_messages_arrive_once_per_step():
    rlm = RLM("question -> answer", max_iters=3)
    with dspy.context(lm=two_steps()):
        items = collect(dspy.streamify(rlm, status_message_provider=StepStatus()), question="q")
    steps = [item.message for item in items if isinstance(item, StatusMessage) and item.message.startswith("writing")]
    assert steps == ["writing step 1/3", "writing step 2/3"]
    assert items.index(prediction_of(items)) == len(items) - 1  # the prediction comes last


def test_a_listener_on_code_streams_each_step_as_it_is_written():
    rlm = RLM("question -> answer", max_iters=3)
    with dspy.context(lm=two_steps()):
        items = collect(dspy.streamify(rlm, stream_listeners=[StreamListener(signature_field_name="code", allow_reuse=True)]),
                        question="q")
    code = "".join(chunk.chunk for chunk in chunks_for(items, "code"))
    assert "total = 40 + 2" in code and "SUBMIT(answer=str(total))" in code
    assert len(chunks_for(items, "code")) > 2  # in pieces, not one block per step
    assert sum(chunk.is_last_chunk for chunk in chunks_for(items, "code")) == 2  # one per step


def test_a_call_with_a_deadline_streams_too():
    """`max_time` runs the root model under a bound; it must still be on a thread DSPy can stream from."""
    rlm = RLM("question -> answer", max_iters=3, max_time=120)
    with dspy.context(lm=two_steps()):
        items = collect(dspy.streamify(rlm, stream_listeners=[StreamListener(signature_field_name="code", allow_reuse=True)]),
                        question="q")
    assert prediction_of(items).answer == "42"
    assert "SUBMIT(answer=str(total))" in "".join(chunk.chunk for chunk in chunks_for(items, "code"))


def test_the_submitted_answer_streams_to_a_listener_on_the_output_field():
    """A listener on an output field gets the final answer even when code SUBMITs it (no LM writes it)."""
    rlm = RLM("question -> answer", max_iters=3)
    listener = StreamListener(signature_field_name="answer")
    with dspy.context(lm=two_steps()):
        items = collect(dspy.streamify(rlm, stream_listeners=[listener]), question="q")
    answer = chunks_for(items, "answer")
    assert "".join(chunk.chunk for chunk in answer) == "42" and answer[-1].is_last_chunk
    assert answer[-1].predict_name == "extract"
    assert prediction_of(items).answer == "42"


def test_an_extracted_answer_streams_once_when_the_iterations_run_out():
    rlm = RLM("question -> answer", max_iters=1)
    lm = ScriptedLM([step("print('looking')"), {"answer": "from the history"}])
    listener = StreamListener(signature_field_name="answer")
    with dspy.context(lm=lm):
        items = collect(dspy.streamify(rlm, stream_listeners=[listener]), question="q")
    answer = chunks_for(items, "answer")
    assert "".join(chunk.chunk for chunk in answer).strip() == "from the history"
    assert sum(chunk.is_last_chunk for chunk in answer) == 1
    assert prediction_of(items).answer == "from the history"


def test_sub_queries_made_from_sandbox_code_work_while_streaming():
    """llm_query runs on a sandbox thread, away from the stream's event loop: it must not fail."""
    root = ScriptedLM([step("r = llm_query('say hi')\nSUBMIT(answer=r)")])
    sub = ScriptedLM([{"response": "hi there"}], model="scripted/sub")
    rlm = RLM("question -> answer", max_iters=2, sub_lm=sub)
    with dspy.context(lm=root):
        items = collect(dspy.streamify(rlm, status_message_provider=StepStatus()), question="q")
    prediction = prediction_of(items)
    assert prediction.answer == "hi there"
    assert prediction.trajectory[0]["error"] is None and prediction.usage["sub_calls"] == 1


async def test_an_async_rlm_streams_steps_sub_queries_and_the_answer():
    root = ScriptedLM([step("rs = llm_query_batched(['a', 'b'])\nprint(rs)"), step("SUBMIT(answer=rs[0])")])
    sub = ScriptedLM(lambda request: {"response": f"re:{request.field('prompt')}"}, model="scripted/sub")
    rlm = RLM("question -> answer", max_iters=3, sub_lm=sub)
    listener = StreamListener(signature_field_name="answer")
    with dspy.context(lm=root):
        streamer = dspy.streamify(rlm, status_message_provider=StepStatus(), stream_listeners=[listener],
                                  is_async_program=True)
        items = await acollect(streamer, question="q")
    steps = [item.message for item in items if isinstance(item, StatusMessage) and item.message.startswith("writing")]
    assert steps == ["writing step 1/3", "writing step 2/3"]
    assert "".join(chunk.chunk for chunk in chunks_for(items, "answer")) == "re:a"
    assert prediction_of(items).answer == "re:a"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["forward", "aforward"])
def test_tools_called_from_sandbox_code_report_their_status(asynchronous, caplog):
    """A tool runs on a sandbox thread; its status messages still reach the stream.
    Before: "Not running inside an AnyIO worker thread" warnings, and no messages."""

    def lookup(key: str) -> str:
        return key.upper()

    root = ScriptedLM([step("print(lookup('k'))"), step("SUBMIT(answer=lookup('done'))")])
    rlm = RLM("question -> answer", max_iters=3, tools=[lookup])
    with dspy.context(lm=root):
        items = collect(dspy.streamify(rlm, is_async_program=asynchronous), question="q")
    messages = [item.message for item in items if isinstance(item, StatusMessage)]
    assert messages.count("Calling tool lookup...") == 2
    assert prediction_of(items).answer == "DONE"
    assert not [record for record in caplog.records if "AnyIO worker thread" in record.getMessage()]


def test_a_call_without_streamify_sends_nothing_and_is_unchanged():
    rlm = RLM("question -> answer", max_iters=3)
    with dspy.context(lm=two_steps()):
        assert rlm(question="q").answer == "42"


# ------------------------------------------------------------------ the simulated server streams


def _post_stream(server, body: dict) -> tuple[str, list[dict]]:
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        kind, raw = response.headers.get("Content-Type"), response.read().decode()
    events = [line[len("data: "):] for line in raw.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return kind, [json.loads(event) for event in events[:-1]]


def _completion_text(server, body: dict) -> str:
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


def test_the_simulated_server_answers_stream_true_with_server_sent_events():
    """Before: HTTP 400 "streaming is not supported by the simulated server"."""
    messages = dspy.ChatAdapter().format(dspy.Signature("question -> answer"), demos=[],
                                         inputs={"question": "hello there, simulated model"})
    body = {"model": "sim", "messages": messages}
    with serve_simulated(SimulatedLM()) as server:
        kind, chunks = _post_stream(server, {**body, "stream": True, "stream_options": {"include_usage": True}})
        plain = _completion_text(server, body)
    assert kind.startswith("text/event-stream")
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    deltas = [chunk["choices"][0] for chunk in chunks if chunk["choices"]]
    assert "".join(d["delta"].get("content") or "" for d in deltas) == plain and len(deltas) > 2
    assert deltas[-1]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_a_real_dspy_lm_streams_an_rlm_against_the_simulated_server():
    from dspy_rlm.programs.families import get_family

    family = get_family("niah")
    task = family.make_task(2**12, 1)
    with serve_simulated(SimulatedLM(family.world(), error_rate=0.0)) as server:
        lm = dspy.LM("openai/sim-niah", api_base=server.base_url, api_key="sim", cache=False, num_retries=0)
        rlm = RLM("context, query -> answer", max_iters=6)
        listeners = [StreamListener(signature_field_name="code", allow_reuse=True), StreamListener(signature_field_name="answer")]
        with dspy.context(lm=lm):
            items = collect(dspy.streamify(rlm, stream_listeners=listeners), context=task.context, query=task.query)
    assert len(chunks_for(items, "code")) > 2, "the root model's code should stream over HTTP, in pieces"
    answer = prediction_of(items).answer
    assert "".join(chunk.chunk for chunk in chunks_for(items, "answer")).strip() == str(answer).strip()
