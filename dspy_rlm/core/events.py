"""DSPy callback events for what DSPy itself does not see: code steps and sub-queries.

DSPy fires callbacks for predictors, LMs, adapters and tools it calls, but an RLM's
steps run in a sandbox and its sub-queries are host calls. So this module fires:

- `on_interpreter_execute_start/end` for each step: `instance` is the call's sandbox,
  `inputs` are `{"iteration", "reasoning", "code"}`, and `outputs` the step's trajectory
  record (a dict, as in `result.trajectory`);
- `on_tool_start/end` for each `llm_query` (one per prompt, batched slots included) with
  `inputs` `{"prompt"}` and the answer as `outputs`, and for each `llm_query_batched` call
  (`{"prompts"}`, the list of answers) around its slots;
- `on_tool_start/end` for each child run (`rlm_query`, one per child) with `inputs`
  `{"prompt", "depth"}` and the child's answer; a child's steps fire the step events
  above with a `depth` key in `inputs`.

MLflow's DSPy callback turns the tool events into spans (renamed here `llm_query` and
`llm_query_batched`), and `RLMProgress` draws the live display from them: one source.
`named_predictor` names a predictor's MLflow span after the predictor (`generate_code`).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any, Callable, Iterator

import dspy
from dspy.utils import callback_context
from dspy.utils.callback import BaseCallback

from dspy_rlm import settings
from dspy_rlm.observability.tracing import rename_active_span, tracing_active
from dspy_rlm.sandbox import truncate_middle

logger = logging.getLogger(__name__)


def _llm_query(prompt: str) -> str:
    """Ask the sub-model one prompt; return its answer."""
    raise NotImplementedError  # the tool only describes the call to callbacks; SubQueries makes it


def _llm_query_batched(prompts: list[str]) -> list[str]:
    """Ask the sub-model many prompts at once; return the answers in order."""
    raise NotImplementedError


def _rlm_query(prompt: str, context: Any = None) -> str:
    """Hand a sub-task to a child run with its own REPL; return its answer."""
    raise NotImplementedError  # as above: `core/recursion.py` runs the child


LLM_QUERY = dspy.Tool(_llm_query, name="llm_query")
LLM_QUERY_BATCHED = dspy.Tool(_llm_query_batched, name="llm_query_batched")
RLM_QUERY = dspy.Tool(_rlm_query, name="rlm_query")


class Event:
    """One started event; `end(outputs)` (or leaving the `fire` block) ends it."""

    def __init__(self, kind: str, instance: Any, inputs: dict[str, Any]):
        self.kind, self.instance, self.inputs = kind, instance, inputs
        self.call_id = uuid.uuid4().hex
        self.callbacks: list[BaseCallback] = list(dspy.settings.get("callbacks", None) or [])
        self.outputs: Any = None

    def _each(self, phase: str, **arguments: Any) -> None:
        for callback in self.callbacks:
            try:
                getattr(callback, f"on_{self.kind}_{phase}")(call_id=self.call_id, **arguments)
            except Exception as error:  # as DSPy does: a broken callback must not break the call
                logger.warning("Error in callback %s on_%s_%s: %s", callback, self.kind, phase, error)


@contextlib.contextmanager
def fire(kind: str, instance: Any, inputs: dict[str, Any], span_name: str | None = None) -> Iterator[Event]:
    """Fire `on_<kind>_start`, run the block, then `on_<kind>_end` with `event.outputs` (or the exception).

    `span_name` renames the span MLflow's callback opens for a tool event (`Tool.<name>`)."""
    event = Event(kind, instance, inputs)
    if not event.callbacks:
        yield event
        return
    event._each("start", instance=instance, inputs=inputs)
    if span_name is not None:
        rename_active_span(f"Tool.{getattr(instance, 'name', '')}", span_name)
    # As DSPy's `with_callbacks` does: calls made inside see this event as their parent.
    parent = callback_context.ACTIVE_CALL_ID.get()
    callback_context.ACTIVE_CALL_ID.set(event.call_id)
    exception: BaseException | None = None
    try:
        yield event
    except BaseException as error:
        exception = error
        raise
    finally:
        callback_context.ACTIVE_CALL_ID.set(parent)
        event._each("end", outputs=None if exception is not None else event.outputs, exception=exception)


def sub_query_event(prompt: str) -> contextlib.AbstractContextManager[Event]:
    return fire("tool", LLM_QUERY, {"prompt": prompt}, span_name="llm_query")


def batch_event(prompts: list[str]) -> contextlib.AbstractContextManager[Event]:
    return fire("tool", LLM_QUERY_BATCHED, {"prompts": prompts}, span_name="llm_query_batched")


def child_event(prompt: str, depth: int) -> contextlib.AbstractContextManager[Event]:
    """One child run (`rlm_query`, or a slot of `rlm_query_batched`); its answer is the outputs."""
    return fire("tool", RLM_QUERY, {"prompt": prompt, "depth": depth}, span_name="rlm_query")


def step_event(sandbox: Any, iteration: int, reasoning: str, code: str,
               depth: int = 1) -> contextlib.AbstractContextManager[Event]:
    # Bounded as in the history the model reads, so no callback (the live display) gets a 50 MB text.
    reasoning = truncate_middle(reasoning, settings.HISTORY_REASONING_CHARS)
    inputs = {"iteration": iteration, "reasoning": reasoning, "code": code}
    if depth > 1:  # a child run's step (the root's keep their three keys)
        inputs["depth"] = depth
    return fire("interpreter_execute", sandbox, inputs)


class _SpanNamer(BaseCallback):
    """Renames the span MLflow's callback just opened for `predictor` (it runs after MLflow's)."""

    def __init__(self, predictor: Any, name: str):
        self.predictor, self.name = predictor, name

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if instance is self.predictor:
            rename_active_span(f"{type(instance).__name__}.forward", self.name)


def named_predictor(predictor: Callable[..., Any], name: str) -> contextlib.AbstractContextManager:
    """Calls of `predictor` in this block get MLflow spans named `name` (only while a trace is active)."""
    if not tracing_active():
        return contextlib.nullcontext()
    callbacks = list(dspy.settings.get("callbacks", None) or [])
    return dspy.context(callbacks=[*callbacks, _SpanNamer(predictor, name)])
