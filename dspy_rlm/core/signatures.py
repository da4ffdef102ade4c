"""The three DSPy signatures of an RLM: code generation, sub-query and extract.

Their instructions and demos are what optimizers tune, so each is a plain
`dspy.Signature` built once per RLM from the user's task signature.
"""

from __future__ import annotations

import re
from typing import Any

import dspy
from dspy.adapters.utils import translate_field_type

# The limits of one RLM instance are not in the instructions (a saved program would carry them
# into an RLM with others): these phrases point to `iteration`, where each call states them.
PROMPT_LIMIT = "(a prompt may be as long as `iteration` says)"
OUTPUT_LIMIT = "Output longer than `iteration` says is cut in the middle (head and tail kept)."
LIMITS_LINE = "`iteration` gives this step's number, the sub-model calls left in this run, and these size limits."

CODE_INSTRUCTIONS = """You are answering a task whose inputs are too large to read directly. They live as variables in a persistent Python REPL; you see only their names, types, lengths and short previews. Produce these outputs:
{outputs}

Each step, write Python code. It runs, and you see what it printed; then you write the next step. State persists between steps.

Available in the REPL:
- Variables: {inputs} (your input data, already loaded).
- `llm_query(prompt) -> str`: ask a sub-model about a piece of text {prompt_limit}.
- `llm_query_batched(prompts) -> list[str]` (also `llm_batch`): ask many prompts concurrently; much faster than a loop of `llm_query`.
- `SUBMIT({submit_call})` ends the run with the final outputs.{final_hint}
- `print()`: the only way to see results. {output_limit}{tool_docs}

Rules:
1. Explore first: print sizes, samples and structure before processing.
2. Use code for search, counting and aggregation; use `llm_query` for meaning that code cannot find.
3. Chunk large text and use `llm_query_batched` instead of long sequential loops.
4. Keep long or exact values in variables; never retype them.
5. SUBMIT ends the run at once: inspect results in one step, then SUBMIT in a later step.
6. Write ordinary synchronous Python: `x = llm_query(p)` works anywhere except inside a lambda. No network, no files other than your inputs.
{limits_line}"""

EXTRACT_INSTRUCTIONS = """The REPL run ran out of steps before it called SUBMIT. Based on the REPL history, extract the best final outputs you can from what was gathered and computed."""


class SubQuery(dspy.Signature):
    """Answer the request. Everything you need is in the prompt; be precise and concise."""

    prompt: str = dspy.InputField(desc="A request from the REPL code, usually with a chunk of text to read")
    response: str = dspy.OutputField(desc="The answer to the request")


def build_code_signature(task: type[dspy.Signature], *, tool_docs: str = "") -> type[dspy.Signature]:
    """`variables_info, repl_history, iteration -> reasoning, code` with the RLM rules as instructions.

    The instructions hold what a saved program may carry (the task's fields and tools), never the
    limits of one RLM instance: those reach the model in each call's `iteration` input."""
    outputs = task.output_fields
    instructions = CODE_INSTRUCTIONS.format(
        outputs="\n".join(_describe_output(name, field) for name, field in outputs.items()),
        inputs=", ".join(f"`{name}`" for name in task.input_fields),
        submit_call=", ".join(f"{name}=..." for name in outputs),
        final_hint=" With one output, `FINAL(value)` and `FINAL_VAR('name')` also work." if len(outputs) == 1 else "",
        tool_docs=tool_docs,
        prompt_limit=PROMPT_LIMIT,
        output_limit=OUTPUT_LIMIT,
        limits_line=LIMITS_LINE,
    )
    if task.instructions and not task.instructions.startswith("Given the fields"):
        instructions = f"{task.instructions}\n\n{instructions}"
    return dspy.Signature(
        {
            "variables_info": (str, dspy.InputField(desc="The REPL variables: names, types, lengths, previews")),
            "repl_history": (str, dspy.InputField(desc="Earlier steps: reasoning, code and output")),
            "iteration": (str, dspy.InputField(desc="This step's number, the sub-model calls left, the size limits")),
            "reasoning": (str, dspy.OutputField(desc="What you know, what remains, and the plan for this step")),
            "code": (str, dspy.OutputField(desc="Python code for this step, in a ```python block")),
        },
        instructions,
    )


def field_description(field: Any) -> str:
    """A field's own description; empty when DSPy made one up (its `${name}` placeholder)."""
    desc = (field.json_schema_extra or {}).get("desc", "")
    return "" if not desc or desc.startswith("${") else desc


def type_label(annotation: Any) -> str:
    """A short name for a field's type: `str`, `list[int]`, `Literal['yes', 'no']`."""
    label = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return label or str(annotation).replace("typing.", "")


def _describe_output(name: str, field: Any) -> str:
    """`- `name` (type): description`, with the type's constraints where DSPy states them."""
    label = type_label(field.annotation)
    desc = field_description(field)
    desc = f": {desc}" if desc else ""
    constraint = translate_field_type(name, field).split("}", 1)[-1].strip()
    constraint = constraint.strip("()").removeprefix("# note: ")
    constraint = f"; {constraint}" if constraint else ""
    return f"- `{name}` ({label}){desc}{constraint}"


def build_extract_signature(task: type[dspy.Signature]) -> type[dspy.Signature]:
    """`variables_info, repl_history -> <the task's outputs>`, used when iterations run out."""
    objective = f"The task was: {task.instructions}\n\n" if task.instructions else ""
    fields = {
        "variables_info": (str, dspy.InputField(desc="The REPL variables: names, types, lengths, previews")),
        "repl_history": (str, dspy.InputField(desc="All REPL steps: reasoning, code and output")),
    }
    for name, field in task.output_fields.items():
        fields[name] = (field.annotation, field)
    return dspy.Signature(fields, objective + EXTRACT_INSTRUCTIONS)


# The numbered phrases of the instructions before the limits moved to `iteration`. A state saved
# then still quotes the saving RLM's numbers; `upgrade_instructions` swaps in today's wording.
_LEGACY_PHRASES = (
    (re.compile(r"\(up to about [\d,]+ characters per prompt\)"), PROMPT_LIMIT),
    (re.compile(r"Output is truncated to [\d,]+ characters, head and tail\."), OUTPUT_LIMIT),
    (re.compile(r"You can make at most \d+ sub-model calls in this run\."), LIMITS_LINE),
)


def upgrade_instructions(instructions: str) -> str:
    """`instructions` without the per-instance numbers earlier versions wrote into them."""
    for phrase, replacement in _LEGACY_PHRASES:
        instructions = phrase.sub(replacement, instructions)
    return instructions
