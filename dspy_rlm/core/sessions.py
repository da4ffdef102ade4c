"""`RLMSession`: calls of one RLM that share one sandbox, like turns of a conversation.

    with rlm.session() as chat:
        chat(context=report, query="What was revenue in 2023?")
        chat(context=appendix, query="And how does the appendix change that?")

The first call opens the sandbox; later calls reuse it, so variables the code made
earlier are still there. Each call's inputs are the signature's names, as in any call;
the inputs of earlier turns stay as `<name>_<turn>` (`context_1`, `query_1`, ...), and
`session_history` lists the earlier turns (their input variables and outputs). A
`dspy.History` input the caller leaves out is filled with the earlier turns, as DSPy's
own conversational programs expect. Leaving the `with` block (or `close()`) frees the
sandbox. Each call has its own limits and usage; a session serves one thread at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import dspy

from dspy_rlm.errors import SandboxClosed
from dspy_rlm.sandbox import CodeSandbox

SESSION_HISTORY = "session_history"
HISTORY_VALUE_CHARS = 2_000  # longer inputs are named by their variable in a dspy.History message


class RLMSession:
    """One sandbox across calls of `rlm`, a `dspy_rlm.RLM` (see the module docstring)."""

    def __init__(self, rlm: dspy.Module):
        self.rlm = rlm
        self.turns: list[dict[str, Any]] = []  # per finished call: its inputs and outputs
        self._sandbox: CodeSandbox | None = None
        self._routes: dict[str, Callable[..., Any]] = {}  # the current call's host functions
        self._kept: dict[str, Any] = {}  # values of earlier turns' inputs, by variable name
        self._mounted: set[str] = set()  # the names of `_kept` already in the sandbox
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> RLMSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __call__(self, **inputs: Any) -> dspy.Prediction:
        """One turn: call the RLM with `inputs` in this session's sandbox."""
        self._begin()
        try:
            inputs = self._with_history(inputs)
            return self._finished(inputs, self.rlm(**inputs, session=self))
        finally:
            self._lock.release()

    async def acall(self, **inputs: Any) -> dspy.Prediction:
        """`__call__`, awaited (the RLM's `acall`)."""
        self._begin()
        try:
            inputs = self._with_history(inputs)
            return self._finished(inputs, await self.rlm.acall(**inputs, session=self))
        finally:
            self._lock.release()

    def close(self) -> None:
        """Free the sandbox; safe to call twice."""
        self._closed = True
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    # -- used by the run (core/run.py) ------------------------------------------

    def variables(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """What this turn's sandbox holds as inputs: the call's, the earlier turns', and `session_history`."""
        if not self.turns:
            return dict(inputs)
        turn = len(self.turns)  # the last finished turn: its inputs get their turn number now
        for name, value in self.turns[-1]["inputs"].items():
            self._kept[f"{name}_{turn}"] = value
        return {**inputs, **self._kept, SESSION_HISTORY: self._history_entries()}

    def attach(self, variables: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]],
               build: Callable[[Mapping[str, Any], Mapping[str, Callable[..., Any]]], CodeSandbox]) -> CodeSandbox:
        """The session's sandbox for this call: built on the first, given this call's new inputs after."""
        self._routes = dict(functions)
        if self._sandbox is None:
            self._sandbox = build(variables, {name: self._route(name) for name in functions})
        else:  # this call's inputs, the last turn's under their new names, and the history
            self._sandbox.set_inputs({name: value for name, value in variables.items() if name not in self._mounted})
        self._mounted = set(self._kept)
        return self._sandbox

    # -- helpers -------------------------------------------------------------------

    def _begin(self) -> None:
        if self._closed:
            raise SandboxClosed("this RLM session is closed; open a new one with rlm.session()")
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("this RLM session is in a call already; a session serves one call at a time "
                               "(open one session per thread)")

    def _finished(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dspy.Prediction:
        outputs = {name: prediction.get(name) for name in self.rlm.signature.output_fields}
        kept = {name: value for name, value in inputs.items() if name in self.rlm.signature.input_fields}  # no call options
        self.turns.append({"inputs": kept, "outputs": outputs})
        return prediction

    def _route(self, name: str) -> Callable[..., Any]:
        def routed(*args: Any, **kwargs: Any) -> Any:
            return self._routes[name](*args, **kwargs)  # the host function of the call now running

        routed.__name__ = name
        return routed

    def _history_entries(self) -> list[dict[str, Any]]:
        return [{"turn": number, "inputs": [f"{name}_{number}" for name in turn["inputs"]],
                 "outputs": turn["outputs"]} for number, turn in enumerate(self.turns, start=1)]

    def _with_history(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """`inputs`, with a missing `dspy.History` input filled from the earlier turns."""
        for name, field in self.rlm.signature.input_fields.items():
            if name not in inputs and field.annotation is dspy.History:
                messages = [self._message(number, turn, name) for number, turn in enumerate(self.turns, start=1)]
                inputs = {**inputs, name: dspy.History(messages=messages)}
        return inputs

    def _message(self, number: int, turn: dict[str, Any], history_name: str) -> dict[str, Any]:
        message = {}
        for name, value in turn["inputs"].items():
            if name == history_name:
                continue
            short = isinstance(value, str) and len(value) <= HISTORY_VALUE_CHARS
            message[name] = value if short else f"(the variable `{name}_{number}`)"
        return {**message, **turn["outputs"]}

