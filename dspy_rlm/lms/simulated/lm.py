"""`SimulatedLM`: a simulated code-writing model, usable as the RLM's root model and sub-model.

It is not a language model. It stands in for one so that RLM programs,
optimizers, cost and latency can be studied offline, with behaviour that
depends on the prompt the way a model's does. **Every figure it produces is a
simulated-model figure.**

One instance answers every predictor of an RLM; it tells them apart by the
output fields the adapter asks for:

- `reasoning, code` (`generate_code`): the root model (`simulated_root`). It
  draws a strategy from the instructions and demos and writes real Python that
  runs in the sandbox and calls `llm_query` / `llm_query_batched`.
- `response` (`sub_query`): the sub-model. The world answers from the prompt's
  text; with probability `error_rate` the reply holds one mistake.
- the task's outputs (`extract`): the last answer the REPL history printed.
- anything else (outer steps of a composed program): the world's `respond`,
  else each output copies the same-named input (or the first input).

Task knowledge comes from a `SimulatedWorld` given at construction (see
`simulated_world`); the library knows no task family. Token usage is
estimated (about 4 characters a token) and latency is configurable, as in
`ScriptedLM`, whose engine this reuses.
"""

from __future__ import annotations

import re
from typing import Any

from dspy.lm15 import Request, Response

from dspy_rlm.lms.scripted import ScriptedLM, ScriptedRequest
from dspy_rlm.lms.simulated.root import extract_answer, next_step, read_transcript, task_rng
from dspy_rlm.lms.simulated.strategies import STRATEGIES
from dspy_rlm.lms.simulated.world import NONE, SimulatedWorld, register_world, world_named

SIMULATED_LABEL = "simulated model (not a real language model)"
ROOT_FIELDS = ["reasoning", "code"]
_INPUTS = re.compile(r"^\d+\. `(\w+)`", re.MULTILINE)

__all__ = ["SIMULATED_LABEL", "SimulatedLM", "make_lm", "register_world"]


class SimulatedLM(ScriptedLM):
    """A simulated model for RLM programs (root model and sub-model in one).

    Args:
        world: the task family's knowledge (`SimulatedWorld`); without one the
            root model can only guess and the sub-model answers NONE.
        seed: the default seed. A request's own seed (`lm.copy(seed=3)`, or
            `seed` in an OpenAI request body) overrides it.
        latency: seconds per call.
        error_rate: probability that one sub-model reply holds a mistake.
        model: the name reported in history and usage (default `sim/<world>`).
        strategy: always use this strategy (one of `STRATEGIES`) instead of drawing
            one; for experiments that compare strategies.
    """

    def __init__(
        self,
        world: SimulatedWorld | None = None,
        *,
        seed: int = 0,
        latency: float = 0.0,
        error_rate: float = 0.02,
        model: str | None = None,
        strategy: str | None = None,
    ):
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, got {error_rate}")
        if latency < 0:
            raise ValueError(f"latency must be 0 or more seconds, got {latency}")
        if strategy is not None and strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.world = world
        self.error_rate = error_rate
        self.strategy = strategy
        # Prompts can be megabytes and optimizers make thousands of calls: nothing is recorded.
        super().__init__(self._respond, model=model or f"sim/{world.name if world else 'none'}", latency=latency,
                         record=False)
        # As a request parameter, the seed travels with copies and over HTTP like a real model's.
        self.kwargs["seed"] = seed

    @property
    def label(self) -> str:
        return SIMULATED_LABEL

    def complete(self, request: Request) -> Response:
        """Answer one lm15 `Request` directly (the HTTP server uses this); waits `latency`."""
        return self._engine_spec.complete(request)

    def _respond(self, request: ScriptedRequest) -> dict[str, Any] | str:
        seed = request.seed if request.seed is not None else self.kwargs.get("seed", 0)
        outputs = request.output_fields
        if outputs == ROOT_FIELDS and request.field("repl_history") is not None:
            return next_step(read_transcript(request), self.world, seed, self.strategy)
        if outputs == ["response"] and request.field("prompt") is not None:
            return {"response": self.sub_answer(request.field("prompt"), seed)}
        if request.field("repl_history") is not None and request.field("variables_info") is not None:
            return extract_answer(request, outputs)
        return self._other(request, outputs)

    def sub_answer(self, prompt: str, seed: int | None = None) -> str:
        """The sub-model's reply to one prompt (deterministic for a prompt and seed)."""
        if self.world is None:
            return NONE
        seed = self.kwargs.get("seed", 0) if seed is None else seed
        mistake = task_rng(seed, "sub", prompt).random() < self.error_rate
        return self.world.answer(prompt, mistake)

    def _other(self, request: ScriptedRequest, outputs: list[str]) -> dict[str, Any]:
        section = request.system.split("Your input fields are:", 1)[-1].split("Your output fields are:", 1)[0]
        inputs = {name: request.field(name) or "" for name in _INPUTS.findall(section)}
        respond = getattr(self.world, "respond", None)
        answer = respond(inputs, outputs) if respond is not None else None
        if answer is not None:
            return answer
        first = next(iter(inputs.values()), "")
        return {name: inputs.get(name, first) for name in outputs}


def make_lm(spec: str = "sim", **kwargs: Any) -> SimulatedLM:
    """`"sim"` (no world) or `"sim/<world>"` (a registered world), with `SimulatedLM` keyword arguments."""
    name = spec.split("/", 1)[1] if "/" in spec else ""
    world = world_named(name) if name and name != "none" else None
    return SimulatedLM(world, model=kwargs.pop("model", spec if name else "sim/none"), **kwargs)
