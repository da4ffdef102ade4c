"""The simulated root model: read the RLM prompt, decide the next step, write its code.

Each request is answered from the request alone (no hidden state), so the
same prompt and seed always give the same step, across threads, processes
and the HTTP server. The simulator reads:

- the instructions and demos, to draw a strategy (`simulated_strategies`);
- `variables_info`, for the names of the data and question variables;
- `repl_history`, for the question (printed by the first step), its own
  earlier steps (each starts with a `# sim:` tag) and their outputs and errors;
- `iteration`, for the step number and the sub-model calls left.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
from dataclasses import dataclass, field

from dspy_rlm.core.transcript import inputs_section, parse_history, parse_iteration, parse_variables
from dspy_rlm.library import SOLVER_STEP_TAG, parse_index
from dspy_rlm.lms.scripted import ScriptedRequest
from dspy_rlm.lms.simulated.strategies import (
    choose_strategy, delegate_code, function_name, guess_code, library_code, offers_recursion, peek_code, salvage_code,
    strategy_weights, submit_code, work_code,
)
from dspy_rlm.lms.simulated.world import SimulatedWorld, TaskPlan

# The transcript's own format is read with dspy_rlm.core.transcript's parsers; these
# patterns read what is not the transcript: demos, the system prompt, and our own prints.
_DEMO_CODE = re.compile(r"\[\[ ## code ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", re.DOTALL)
_ERROR = re.compile(r"^(?:Traceback|\w*(?:Error|Exceeded|Exception)\b|\[(?:Type )?Error\])", re.MULTILINE)
_ANSWER = re.compile(r"^ANSWER: (.*?)(?: from \d+ replies)?$", re.MULTILINE)
_QUESTION = re.compile(r"^QUESTION: (.*)$", re.MULTILINE)
SUBMIT_STYLES = ("FINAL_VAR", "FINAL", "SUBMIT")


@dataclass
class PastStep:
    """One earlier step as the history shows it."""

    tag: str  # "peek", "work batched", "salvage", "submit", or "" for code that is not ours
    code: str
    output: str

    @property
    def failed(self) -> bool:
        return bool(_ERROR.search(self.output))

    @property
    def answer(self) -> object | None:
        """The value the step printed as `ANSWER: <repr>`, if any."""
        found = _ANSWER.findall(self.output)
        if not found:
            return None
        try:
            return ast.literal_eval(found[-1])
        except (ValueError, SyntaxError):
            return found[-1]


@dataclass
class Transcript:
    """What one root request shows."""

    instructions: str
    demo_codes: list[str]
    variables: dict[str, tuple[str, int]]  # name -> (type, length)
    steps: list[PastStep]
    iteration: int
    max_iters: int
    calls_left: int
    outputs: list[str]
    task_key: str = field(default="")
    library: tuple[str, ...] = ()  # the functions the code library's index lists

    @property
    def data(self) -> str:
        """The variable holding the data: `context` (the RLM convention), else a list if there is one,
        else the longest. A list beside `context` (the `files` index of `dspy-rlm ask`) is not the data."""
        if "context" in self.variables:
            return "context"
        lists = [name for name, (kind, _) in self.variables.items() if kind in ("list", "tuple")]
        return lists[0] if lists else max(self.variables, key=lambda n: self.variables[n][1], default="context")

    @property
    def question_variable(self) -> str:
        for name in ("query", "question", "task", "prompt"):
            if name in self.variables:
                return name
        others = [name for name in self.variables if name != self.data]
        return others[0] if others else self.data

    @property
    def question(self) -> str | None:
        for step in self.steps:
            if step.tag == "peek" and (found := _QUESTION.search(step.output)):
                try:
                    return str(ast.literal_eval(found.group(1)))
                except (ValueError, SyntaxError):
                    return found.group(1)
        return None


def read_transcript(request: ScriptedRequest) -> Transcript:
    """Parse a `generate_code` request (ChatAdapter format)."""
    info = request.field("variables_info") or ""
    variables = {v.name: (v.type_name, v.length or 0) for v in parse_variables(info) if v.is_input}
    iteration = parse_iteration(request.field("iteration") or "")
    outputs = re.search(r"`SUBMIT\(([^)]*)\)`", request.system)
    demos = [turn for role, turn in request.messages[:-1] if role == "assistant"]
    return Transcript(
        instructions=request.system,
        demo_codes=[m.group(1) if (m := _DEMO_CODE.search(turn)) else turn for turn in demos],
        variables=variables,
        steps=_read_steps(request.field("repl_history") or ""),
        iteration=iteration.iteration if iteration else 1,
        max_iters=iteration.max_iters if iteration else 20,
        calls_left=iteration.calls_left if iteration and iteration.calls_left is not None else 50,
        outputs=re.findall(r"(\w+)=\.\.\.", outputs.group(1)) if outputs else ["answer"],
        task_key=inputs_section(info),
        library=tuple(parse_index(info)),
    )


def _read_steps(history: str) -> list[PastStep]:
    steps = []
    for entry in parse_history(history):
        first = entry.code.splitlines()[0] if entry.code else ""
        if first == SOLVER_STEP_TAG:  # the library's solver ran first and failed: not a step of ours
            continue
        tag = first[len("# sim:"):].strip() if first.startswith("# sim:") else ""
        steps.append(PastStep(tag, entry.code, entry.output.strip()))
    return steps


def task_rng(seed: int, purpose: str, key: str) -> random.Random:
    """A RNG fixed by the seed, the purpose and the task, so one run draws consistently."""
    digest = hashlib.sha256(f"{seed}|{purpose}|{key}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def next_step(transcript: Transcript, world: SimulatedWorld | None, seed: int,
              forced: str | None = None) -> dict[str, str]:
    """The reasoning and code of the next step (`forced` overrides the drawn strategy)."""
    t = transcript
    if not t.steps:
        return _step("Look at the data's size and head, and read the question in full.",
                     peek_code(t.data, t.question_variable))
    question = t.question
    plan = world.plan(question) if world is not None and question is not None else None
    strategy = forced or choose_strategy(strategy_weights(t.instructions, t.demo_codes),
                                         task_rng(seed, "strategy", t.task_key))
    if plan is None:
        strategy = "guess"
    last = t.steps[-1]
    style = task_rng(seed, "submit", t.task_key).choice(SUBMIT_STYLES)
    if last.tag == "submit":  # a submission that ended the run would not be in the history
        if sum(step.tag == "submit" for step in t.steps) >= 2:
            return _step("Submitting failed twice: submit a guess.",
                         guess_code(plan, t.data) + "\n" + submit_code("SUBMIT", t.outputs, cast=True))
        return _step("The submission was refused; submit the answer as a string.", submit_code("SUBMIT", t.outputs, cast=True))
    if last.answer is not None and not last.failed:
        if _empty(last.answer) and strategy != "guess" and not _tried(t, "batched"):
            return _work("batched", plan, t, "Nothing found that way; read every chunk with llm_query_batched instead.")
        return _step(f"The answer is {_short(last.answer)}; submit it.", submit_code(style, t.outputs))
    if t.iteration >= t.max_iters or last.tag.startswith(("work guess", "salvage")):
        return _step("Out of options: submit a guess.", guess_code(plan, t.data) + "\n" + submit_code("SUBMIT", t.outputs))
    if last.tag == "peek":
        return _work(strategy, plan, t, f"Question read. Strategy: {strategy}.")
    if "budget exhausted" in last.output:
        return _step("The sub-model budget ran out; aggregate the replies gathered so far.", salvage_code(plan))
    if ("NameError" in last.output or "were lost" in last.output) and not _retried(t):
        return _work(strategy, plan, t, "Variables were lost; run the step again.", retry=True)
    return _step("That step failed; answer with a guess.", guess_code(plan, t.data))


def _work(strategy: str, plan: TaskPlan | None, t: Transcript, reasoning: str, retry: bool = False) -> dict[str, str]:
    if plan is None or strategy == "guess":
        return _step(reasoning, guess_code(plan, t.data))
    if plan.delegate and offers_recursion(t.instructions):  # each unit needs its own search: a child run each
        return _step(f"{reasoning} Each unit needs a search of its own: one child run per unit.",
                     delegate_code(plan, t.data))
    if plan.function and function_name(plan.function) in t.library:  # the library can answer: call it
        return _step(f"{reasoning} The library defines {function_name(plan.function)}: call it.",
                     library_code(plan, t.data))
    code = work_code(strategy, plan, t.data, t.calls_left, t.library)
    if retry:
        code = code.replace(f"# sim: work {strategy}", f"# sim: work {strategy} retry", 1)
    return _step(reasoning, code)


def _tried(t: Transcript, strategy: str) -> bool:
    return any(step.tag.startswith(f"work {strategy}") for step in t.steps)


def _retried(t: Transcript) -> bool:
    return any(step.tag.endswith("retry") for step in t.steps)


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().upper() in ("", "NONE"))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _step(reasoning: str, code: str) -> dict[str, str]:
    return {"reasoning": reasoning, "code": f"```python\n{code}\n```"}


def extract_answer(request: ScriptedRequest, outputs: list[str]) -> dict[str, object]:
    """The `extract` fallback: the last answer the history printed, else 'unknown'."""
    answers = [step.answer for step in _read_steps(request.field("repl_history") or "") if step.answer is not None]
    value = answers[-1] if answers else "unknown"
    return {name: (value if i == 0 else []) for i, name in enumerate(outputs)}
