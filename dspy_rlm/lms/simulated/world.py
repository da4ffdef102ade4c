"""What the simulated model knows about a task family, given to it by injection.

The library does not know any task family. A family hands the simulator a
`SimulatedWorld` with two skills that stand in for a real model's
understanding:

- `plan(question)`: how the root model reads a question. It parses the
  question text only (never the data or the gold answer) and returns a
  `TaskPlan`: what to ask the sub-model about a chunk, which keywords a model
  would grep for from its priors, and the Python that aggregates the replies.
  The strategies in `simulated_strategies` turn a plan into real code.
- `answer(prompt, mistake)`: how the sub-model reads one prompt (a question,
  `PROMPT_SEPARATOR`, then a chunk of text). It answers from the text in the
  prompt only, using the family's ground-truth templates as its "semantic
  understanding"; with `mistake=True` it makes one plausible error.

A world may also answer the other signatures of a composed program
(`respond`); the simulator copies inputs for signatures nobody knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

PROMPT_SEPARATOR = "\n---\n"
NONE = "NONE"


@dataclass(frozen=True)
class Stage:
    """One round of sub-queries: a question about each chunk.

    `ask` and `keywords` may contain `{entity}`, replaced by the previous
    stage's answer (multi-hop questions have one stage per hop).
    """

    ask: str
    keywords: str  # a regex of cues from the model's priors, used by the regex-filter strategy


@dataclass(frozen=True)
class TaskPlan:
    """The simulated root model's reading of one question: the pieces its code needs.

    Attributes:
        stages: sub-query rounds; the last one's replies feed `combine`.
        combine: Python source run in the REPL after the last stage. It sees
            `units` (the data split into lines, documents or files), `chunk_ids`
            (unit indices per chunk), `replies` (one sub-model reply per chunk)
            and `entity`, and must set `answer` (and any other output).
        guess: a Python expression answering without reading (it may use `units`).
        units: a Python expression splitting `context` into units.
        unit_filter: a boolean Python expression on a unit `u`, for exact
            conditions that code can check (user ids, dates), or "".
        start: the entity the first stage starts from, if any.
        setup: Python source run first (imports, helpers the other pieces use).
        outputs: the output names `combine` sets besides `answer`.
        function: Python source of one documented function that answers the whole task from the
            inputs (`def f(context, query)`), or "" when no code alone can. The work step defines it
            and prints its result beside the sub-model's answer; a code library that lists it is
            called instead (see `strategies.library_code`).
        delegate: the prompt of one child run per unit (`rlm_query_batched(..., contexts=units)`), for a
            task whose units each need a search of their own; used when the RLM offers `rlm_query`
            (`max_depth >= 2`). "" when the task has no such split.
        delegate_combine: Python source run on the child runs' `replies` (one per unit); sets `answer`.
    """

    stages: tuple[Stage, ...]
    combine: str
    guess: str
    units: str = "context.split('\\n') if isinstance(context, str) else [str(x) for x in context]"
    unit_filter: str = ""
    start: str = ""
    setup: str = ""
    outputs: tuple[str, ...] = ()
    function: str = ""
    delegate: str = ""
    delegate_combine: str = ""


@runtime_checkable
class SimulatedWorld(Protocol):
    """A task family's knowledge, as the simulated model uses it."""

    name: str

    def plan(self, question: str) -> TaskPlan | None:
        """How to solve `question`, or None when the question is not understood."""
        ...

    def answer(self, prompt: str, mistake: bool = False) -> str:
        """The sub-model's reply to `prompt`; with `mistake`, one plausible error."""
        ...


def split_prompt(prompt: str) -> tuple[str, str]:
    """A sub-query prompt as (question, text); the text is empty when there is no separator."""
    question, _, text = prompt.partition(PROMPT_SEPARATOR)
    return question.strip(), text


_WORLDS: dict[str, Callable[[], SimulatedWorld]] = {}


def register_world(name: str, factory: Callable[[], SimulatedWorld]) -> None:
    """Make `make_lm("sim/<name>")` build a simulated model with this world."""
    _WORLDS[name] = factory


def world_named(name: str) -> SimulatedWorld:
    """The registered world `name`; a clear error names the ones that exist."""
    if name not in _WORLDS:
        known = ", ".join(sorted(_WORLDS)) or "none yet"
        raise ValueError(f"No simulated world named {name!r} is registered (registered: {known}). "
                         "Task families register theirs when imported, e.g. `import dspy_rlm.programs.families`.")
    return _WORLDS[name]()
