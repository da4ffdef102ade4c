"""`ScriptedLM`: a `dspy.LM` that answers from a script and records every request.

Use it to test DSPy programs without a model: give it a list of answers, or
a function of the request. Dict answers are formatted for whichever adapter
made the request (ChatAdapter or JSONAdapter). Token counts are estimated
from text length (about 4 characters a token) and are labelled as such.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterator, Mapping, Sequence

import dspy
from dspy.lm15 import Message, Response, StreamDeltaEvent, TextDelta, TextPart, Usage, response_to_events

from dspy_rlm.errors import ScriptExhausted

Answer = str | Mapping[str, Any]
# A field's value runs to the next field header, or to ChatAdapter's closing "Respond with ..." line.
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with the corresponding output|\Z)", re.DOTALL)
_PIECE = re.compile(r"\S+\s*|\s+")  # a streamed answer arrives a word at a time, as tokens would


@dataclass(frozen=True)
class ScriptedRequest:
    """One request as the model saw it."""

    system: str
    messages: tuple[tuple[str, str], ...]
    seed: int | None = None  # the request's sampling seed, if it set one

    @property
    def text(self) -> str:
        """The whole prompt: system message and every turn."""
        return "\n\n".join([self.system, *(content for _, content in self.messages)])

    @property
    def last(self) -> str:
        """The final user turn."""
        return self.messages[-1][1] if self.messages else ""

    def field(self, name: str) -> str | None:
        """The value of input field `name` in the final turn (ChatAdapter format), if present."""
        for key, value in _FIELD.findall(self.last):
            if key == name:
                return value.strip()
        return None

    @property
    def output_fields(self) -> list[str]:
        """The output field names the adapter asked for, in order."""
        section = self.system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
        return re.findall(r"^\d+\. `(\w+)`", section, flags=re.MULTILINE)


class ScriptedLM(dspy.LM):
    """A scripted stand-in for a language model.

    Args:
        responses: answers in order (a str is returned verbatim; a dict maps output
            field names to values), or a function `request -> answer`.
        model: the model name reported in history and usage.
        latency: seconds to wait per call (`asyncio.sleep` on the async path).
        record: keep every request in `requests` (turn off for long runs with large prompts).
    """

    def __init__(
        self,
        responses: Sequence[Answer] | Callable[[ScriptedRequest], Answer],
        *,
        model: str = "scripted/lm",
        latency: float = 0.0,
        record: bool = True,
    ):
        engine = _ScriptEngine(responses, latency, model, record)
        super().__init__(model, engine=engine, async_engine=_AsyncScriptEngine(engine), cache=False)

    @property
    def requests(self) -> list[ScriptedRequest]:
        """Every request received so far, in order."""
        return list(self._engine_spec.requests)

    def __deepcopy__(self, memo: dict) -> "ScriptedLM":
        # A script is one shared resource: copies of a program must consume and record the same one.
        return self


class _ScriptEngine:
    def __init__(self, responses: Any, latency: float, model: str, record: bool = True):
        self.script = responses if callable(responses) else list(responses)
        self.latency = latency
        self.model = model
        self.record = record
        self.calls = 0
        self.requests: list[ScriptedRequest] = []
        self._lock = threading.Lock()

    # A whole program saved with `save(..., save_program=True)` pickles its models: the lock is
    # made anew (the script, its position and the recorded requests travel).
    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def complete(self, request: Any) -> Response:
        if self.latency:
            time.sleep(self.latency)
        return self.answer(request)

    def stream(self, request: Any) -> Iterator[Any]:
        """The answer as stream events, for DSPy's streaming path (`dspy.streamify`)."""
        return stream_events(self.complete(request))

    def answer(self, request: Any) -> Response:
        scripted = _as_scripted(request)
        with self._lock:
            index, self.calls = self.calls, self.calls + 1
            if self.record:
                self.requests.append(scripted)
            if not callable(self.script) and index >= len(self.script):
                raise ScriptExhausted(
                    f"ScriptedLM {self.model!r} got request #{index + 1} but its script has {len(self.script)} answers; "
                    "add answers or pass a function"
                )
        answer = self.script(scripted) if callable(self.script) else self.script[index]
        text = answer if isinstance(answer, str) else _format(answer, scripted)
        prompt_tokens, completion_tokens = _estimate_tokens(scripted.text), _estimate_tokens(text)
        return Response(
            id=None,
            model=self.model,
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens,
                        total_tokens=prompt_tokens + completion_tokens),
        )

    def close(self) -> None:
        pass


class _AsyncScriptEngine:
    def __init__(self, sync: _ScriptEngine):
        self.sync = sync

    async def complete(self, request: Any) -> Response:
        if self.sync.latency:
            await asyncio.sleep(self.sync.latency)
        return self.sync.answer(request)

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        for event in stream_events(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        pass


def stream_pieces(text: str) -> list[str]:
    """`text` in the pieces a streamed answer sends (a word and its trailing space each); they join to `text`."""
    return _PIECE.findall(text)


def stream_events(response: Response) -> Iterator[Any]:
    """A complete response as lm15 stream events, its text deltas a word at a time."""
    for event in response_to_events(response):
        delta = getattr(event, "delta", None)
        if not isinstance(delta, TextDelta) or len(pieces := stream_pieces(delta.text)) < 2:
            yield event
            continue
        yield StreamDeltaEvent(delta=dataclasses.replace(delta, text=pieces[0]))  # it carries the logprobs
        for piece in pieces[1:]:
            yield StreamDeltaEvent(delta=TextDelta(text=piece, part_index=delta.part_index))


def _as_scripted(request: Any) -> ScriptedRequest:
    system = request.system or ""
    if not isinstance(system, str):
        system = "".join(getattr(part, "text", "") for part in system)
    config = getattr(request, "config", None)
    return ScriptedRequest(system=system, messages=tuple((m.role, m.text or "") for m in request.messages),
                           seed=getattr(config, "seed", None))


def _format(fields: Mapping[str, Any], request: ScriptedRequest) -> str:
    """Render field values the way the requesting adapter parses them."""
    if "[[ ## completed ## ]]" not in request.system:
        return json.dumps({k: v for k, v in fields.items()})
    blocks = [f"[[ ## {k} ## ]]\n{v if isinstance(v, str) else json.dumps(v)}" for k, v in fields.items()]
    return "\n\n".join([*blocks, "[[ ## completed ## ]]"])


def _estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)
