"""`SimulatedTeacher`: a stand-in for the reflection / proposal model of instruction dspy_rlm.optimizers.

It is not a language model, and it knows no task family. It mimics, in a
deterministic and inspectable way, what a strong model does with an
optimizer's prompts:

- GEPA reflection (a raw prompt with the current instruction and examples
  with feedback): keep the instruction and add the lessons the feedback
  repeats, i.e. sentences that recur across examples and name no
  example-specific number (the general advice a reflective model would
  distil) from the examples that did not score fully. With no such lesson,
  the instruction is returned unchanged.
- SIMBA's `OfferFeedback`: advise each module to use the functions the
  better trajectory's code called and the worse one's did not.
- MIPROv2's proposer (`proposed_instruction`): the basic instruction plus
  the proposer's tip; descriptions and observations get one plain sentence.

**Scores reached with it measure the optimization pipeline, not a real
model's ability.**
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from dspy_rlm.lms.scripted import ScriptedLM, ScriptedRequest

REFLECTION_MARK = "I provided an assistant with the following instructions"
LESSONS_HEADER = "Lessons from earlier runs:"
_BLOCK = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)
_FEEDBACK = re.compile(r"^#+ Feedback\s*\n(.*?)(?=^#+ |\Z)", re.DOTALL | re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PERFECT = re.compile(r"Score 1(?:\.0+)?\b")
_CALL = re.compile(r"\b([A-Za-z_][\w.]*)\(")
_COMMON_CALLS = {"print", "len", "str", "int", "float", "list", "dict", "set", "sorted", "range", "enumerate",
                 "min", "max", "sum", "isinstance", "repr", "type", "zip", "any", "all", "tuple"}


class SimulatedTeacher(ScriptedLM):
    """The simulated reflection / prompt model (see the module docstring)."""

    def __init__(self, model: str = "sim/teacher"):
        super().__init__(self._respond, model=model)

    def _respond(self, request: ScriptedRequest) -> dict[str, Any] | str:
        if REFLECTION_MARK in request.last:
            return f"```\n{reflect(request.last)}\n```"
        outputs = request.output_fields
        if "new_instruction" in outputs:  # dspy.GEPA's proposer (ProposeInstruction, JSONAdapter)
            feedback = feedback_of(request.field("examples_with_feedback") or "")
            return {"new_instruction": improve(request.field("current_instruction") or "", feedback)}
        if "module_advice" in outputs:
            return {"discussion": "The better trajectory read more of the data with the sub-model.",
                    "module_advice": offer_advice(request)}
        if "proposed_instruction" in outputs:
            basic, tip = request.field("basic_instruction") or "", request.field("tip") or ""
            return {"proposed_instruction": f"{basic}\n\n{tip}".strip()}
        return {name: "A program that answers questions over long inputs by writing code." for name in outputs}


def reflect(prompt: str) -> str:
    """The new instruction for GEPA's raw reflection prompt (gepa's default template)."""
    blocks = _BLOCK.findall(prompt)
    current = blocks[0].strip() if blocks else ""
    side_info = prompt.split(blocks[0], 1)[1] if blocks else prompt
    return improve(current, [f.strip() for f in _FEEDBACK.findall(side_info)])


def feedback_of(examples: str) -> list[str]:
    """The feedback texts of `examples_with_feedback` (a JSON list of records)."""
    try:  # raw_decode: the field may be followed by the adapter's closing line
        records, _ = json.JSONDecoder().raw_decode(examples.strip())
    except ValueError:
        return [f.strip() for f in _FEEDBACK.findall(examples)]
    found = []
    for record in records if isinstance(records, list) else []:
        for key, value in (record.items() if isinstance(record, dict) else []):
            if key.lower() == "feedback" and isinstance(value, str):
                found.append(value)
    return found


def improve(current: str, feedback: list[str]) -> str:
    """The current instruction plus the lessons the feedback repeats (unchanged when there are none)."""
    lessons = recurring_lessons(feedback)
    new = [lesson for lesson in lessons if lesson not in current]
    if not new:
        return current
    header = "" if LESSONS_HEADER in current else f"\n\n{LESSONS_HEADER}"
    return current + header + "".join(f"\n- {lesson}" for lesson in new)


def recurring_lessons(feedback: list[str]) -> list[str]:
    """Digit-free sentences shared by at least half of the imperfect examples' feedback (in first-seen order).

    An example is imperfect unless its feedback starts with "Score 1" (a full score)."""
    failing = [text for text in feedback if not _PERFECT.match(text)]
    counts: Counter[str] = Counter()
    order: dict[str, int] = {}
    for text in failing:
        for sentence in dict.fromkeys(s.strip() for s in _SENTENCE.split(text) if s.strip()):
            counts[sentence] += 1
            order.setdefault(sentence, len(order))
    needed = max(1, (len(failing) + 1) // 2)
    keep = [s for s, n in counts.items() if n >= needed and not re.search(r"\d", s) and len(s) > 20]
    return sorted(keep, key=order.__getitem__)


def offer_advice(request: ScriptedRequest) -> dict[str, str]:
    """SIMBA advice: use the calls the better trajectory made and the worse one did not."""
    better = set(_CALL.findall(request.field("better_program_trajectory") or "")) - _COMMON_CALLS
    worse = set(_CALL.findall(request.field("worse_program_trajectory") or "")) - _COMMON_CALLS
    names = re.findall(r"[\w.]+", request.field("module_names") or "") or ["generate_code"]
    calls = sorted(better - worse)
    advice = (f"When the inputs look like this, call {', '.join(f'{c}(...)' for c in calls)} "
              "as the higher-scoring run did." if calls else "Keep the approach of the higher-scoring run.")
    return {name: advice for name in names}
