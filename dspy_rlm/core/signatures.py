"""The three DSPy signatures of an RLM: code generation, sub-query and extract.

Their instructions and demos are what optimizers tune, so each is a plain
`dspy.Signature` built once per RLM from the user's task signature.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.adapters.utils import translate_field_type

CODE_INSTRUCTIONS = """You are answering a task whose inputs are too large to read directly. They live as variables in a persistent Python REPL; you see only their names, types, lengths and short previews. Produce these outputs:
{outputs}

Each step, write Python code. It runs, and you see what it printed; then you write the next step. State persists between steps.

Available in the REPL:
- Variables: {inputs} (your input data, already loaded).
- `llm_query(prompt) -> str`: ask a sub-model about a piece of text (up to about {max_prompt_chars:,} characters per prompt).
- `llm_query_batched(prompts) -> list[str]` (also `llm_batch`): ask many prompts concurrently; much faster than a loop of `llm_query`.
- `SUBMIT({submit_call})` ends the run with the final outputs.{final_hint}
- `print()`: the only way to see results. Output is truncated to {max_output_chars:,} characters, head and tail.{tool_docs}

Rules:
1. Explore first: print sizes, samples and structure before processing.
2. Use code for search, counting and aggregation; use `llm_query` for meaning that code cannot find.
3. Chunk large text and use `llm_query_batched` instead of long sequential loops.
4. Keep long or exact values in variables; never retype them.
5. SUBMIT ends the run at once: inspect results in one step, then SUBMIT in a later step.
6. Write ordinary synchronous Python: `x = llm_query(p)` works anywhere except inside a lambda. No network, no files other than your inputs.
You can make at most {max_llm_calls} sub-model calls in this run."""

EXTRACT_INSTRUCTIONS = """The REPL run ran out of steps before it called SUBMIT. Based on the REPL history, extract the best final outputs you can from what was gathered and computed."""


class SubQuery(dspy.Signature):
    """Answer the request. Everything you need is in the prompt; be precise and concise."""

    prompt: str = dspy.InputField(desc="A request from the REPL code, usually with a chunk of text to read")
    response: str = dspy.OutputField(desc="The answer to the request")


def build_code_signature(
    task: type[dspy.Signature],
    *,
    max_llm_calls: int,
    max_output_chars: int,
    max_prompt_chars: int,
    tool_docs: str = "",
) -> type[dspy.Signature]:
    """`variables_info, repl_history, iteration -> reasoning, code` with the RLM rules as instructions."""
    outputs = task.output_fields
    instructions = CODE_INSTRUCTIONS.format(
        outputs="\n".join(_describe_output(name, field) for name, field in outputs.items()),
        inputs=", ".join(f"`{name}`" for name in task.input_fields),
        submit_call=", ".join(f"{name}=..." for name in outputs),
        final_hint=" With one output, `FINAL(value)` and `FINAL_VAR('name')` also work." if len(outputs) == 1 else "",
        max_output_chars=max_output_chars,
        max_prompt_chars=max_prompt_chars,
        max_llm_calls=max_llm_calls,
        tool_docs=tool_docs,
    )
    if task.instructions and not task.instructions.startswith("Given the fields"):
        instructions = f"{task.instructions}\n\n{instructions}"
    return dspy.Signature(
        {
            "variables_info": (str, dspy.InputField(desc="The REPL variables: names, types, lengths, previews")),
            "repl_history": (str, dspy.InputField(desc="Earlier steps: reasoning, code and output")),
            "iteration": (str, dspy.InputField(desc="This step's number and the remaining sub-model budget")),
            "reasoning": (str, dspy.OutputField(desc="What you know, what remains, and the plan for this step")),
            "code": (str, dspy.OutputField(desc="Python code for this step, in a ```python block")),
        },
        instructions,
    )


def field_description(field: Any) -> str:
    """A field's own description; empty when DSPy made one up (its `${name}` placeholder)."""
    desc = (field.json_schema_extra or {}).get("desc", "")
    return "" if not desc or desc.startswith("${") else desc


def _describe_output(name: str, field: Any) -> str:
    """`- `name` (type): description`, with the type's constraints where DSPy states them."""
    annotation = field.annotation
    label = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    label = label or str(annotation).replace("typing.", "")
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
