"""The RLM's task-bound predictors, and the checks a saved or loaded program goes through.

`generate_code`'s instructions name the task's inputs, outputs and tools, and
`extract`'s fields are the task's outputs. A state saved for another task would
tell the model about fields and tools that are not there, so these predictors
record their task in the state they save and refuse to load another task's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import cloudpickle
import dspy

from dspy_rlm.core.signatures import type_label, upgrade_instructions

TASK_KEY = "rlm_task"
DSPY_RLM_PREDICTORS = ("generate_action", "extract")


def task_record(task: type[dspy.Signature], tools: Iterable[str]) -> dict[str, Any]:
    """What a saved predictor's text depends on: input names, output names and types, tool names."""
    return {
        "inputs": list(task.input_fields),
        "outputs": {name: type_label(field.annotation) for name, field in task.output_fields.items()},
        "tools": sorted(tools),
    }


def describe_task(record: Mapping[str, Any]) -> str:
    """`context, query -> answer: str` (with tools a, b), as an error names a task."""
    outputs = ", ".join(f"{name}: {label}" for name, label in record.get("outputs", {}).items())
    tools = record.get("tools") or []
    return f"{', '.join(record.get('inputs', []))} -> {outputs}" + (f" (tools: {', '.join(tools)})" if tools else "")


class Predict(dspy.Predict):
    """A `dspy.Predict` bound to one task: its state records the task, and loading checks it.

    It keeps DSPy's class name so traces still show `Predict.forward`."""

    def __init__(self, signature: type[dspy.Signature], *, task: dict[str, Any], **config: Any):
        super().__init__(signature, **config)
        self.rlm_task = task

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        return {**super().dump_state(json_mode=json_mode), TASK_KEY: self.rlm_task}

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> Predict:
        saved = state.get(TASK_KEY)  # None in states saved before tasks were recorded
        if saved is not None and saved != self.rlm_task:
            raise ValueError(
                f"This state was saved from an RLM for `{describe_task(saved)}`, but this RLM is for "
                f"`{describe_task(self.rlm_task)}`. The state's instructions and demos name the other fields "
                f"and tools, so they would mislead the model. Load it into RLM(\"{_signature_text(saved)}\", ...) "
                "with those tools, or rebuild and optimize a program for this signature.")
        _check_field_count(state, self.signature)
        super().load_state({key: value for key, value in state.items() if key != TASK_KEY}, **kwargs)
        self.signature = self.signature.with_instructions(upgrade_instructions(self.signature.instructions))
        return self


def check_program_state(state: Mapping[str, Any], predictor_names: Iterable[str]) -> None:
    """Refuse, by name, a state that lacks some of this RLM's predictors (a `dspy.RLM`'s, say)."""
    missing = [name for name in predictor_names if name not in state]
    if not missing:
        return
    if all(name in state for name in DSPY_RLM_PREDICTORS):
        raise ValueError(
            "This is the state of a dspy.RLM (predictors generate_action and extract), not of a dspy_rlm.RLM "
            "(generate_code, sub_query and extract, with their own fields and instructions), so it cannot be "
            "loaded here. Load it into dspy.RLM(...) (dspy.RLM(..., interpreter_factory=dspy_rlm.EryxInterpreter) "
            "runs it on eryx), or optimize a dspy_rlm.RLM afresh.")
    found = sorted(key for key in state if key != "metadata")
    raise ValueError(f"This state has no entry for the predictors {missing} (it has {found}): it was saved from "
                     "another program. Load it into the program that saved it.")


def _signature_text(record: Mapping[str, Any]) -> str:
    outputs = ", ".join(f"{name}: {label}" if label != "str" else name for name, label in record["outputs"].items())
    return f"{', '.join(record['inputs'])} -> {outputs}"


def _check_field_count(state: Mapping[str, Any], signature: type[dspy.Signature]) -> None:
    # DSPy pairs saved fields with the signature's by position and silently drops the surplus.
    saved = len(state.get("signature", {}).get("fields", []))
    if saved and saved != len(signature.fields):
        raise ValueError(f"This state's predictor has {saved} fields but this RLM's has {len(signature.fields)} "
                         f"({', '.join(signature.fields)}): it was saved for another signature.")


def unpicklable_parts(parts: Mapping[str, Any]) -> list[str]:
    """Those of `parts` (name -> object) that cloudpickle cannot carry, each with the reason."""
    found = []
    for name, value in parts.items():
        try:
            cloudpickle.dumps(value)
        except Exception as error:  # pickle raises TypeError, PicklingError, AttributeError, ...
            found.append(f"{name} ({error})")
    return found
