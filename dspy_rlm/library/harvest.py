"""Finding candidate library functions in the code of successful runs (no DSPy, no sandbox).

`candidates_from_steps` reads trajectories (lists of step dicts with a `code` key, as
`Prediction.trajectory` holds them) of runs that scored at least a threshold, extracts the
functions the model defined, makes each self-contained (the imports it uses travel with it;
private `_helpers` it calls too), normalises and deduplicates them. Functions that cannot
stand alone are rejected here with the reason; validation in the sandbox comes later.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dspy_rlm.library.code import DefinedFunction, called_names, defined_functions, imported_names, normalise


@dataclass(frozen=True)
class HarvestedRun:
    """One run to harvest from: a label (run or trace id, or `train[3]`), its score and its steps."""

    label: str
    score: float
    trajectory: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Candidate:
    """A function found in successful runs; `problem` says why it cannot join the library, if it cannot."""

    name: str
    code: str
    runs: tuple[str, ...]
    score: float
    problem: str | None = None


def candidates_from_steps(runs: Iterable[HarvestedRun], threshold: float,
                          reserved: Iterable[str] = ()) -> list[Candidate]:
    """Every distinct function defined by the runs scoring at least `threshold`, sorted by name.

    A name defined in several versions keeps the one most runs wrote (then the shortest); the
    others come back rejected, as do functions reading run variables, without a docstring, or
    named like an input or a sandbox function (`reserved`)."""
    versions: dict[str, dict[str, list[HarvestedRun]]] = {}
    problems: dict[tuple[str, str], str] = {}
    for run in runs:
        if run.score < threshold:
            continue
        for found in _run_functions(run.trajectory):
            versions.setdefault(found.name, {}).setdefault(found.code, []).append(run)
            problem = _problem(found, set(reserved))
            if problem:
                problems[(found.name, found.code)] = problem
    out = []
    for name, by_code in sorted(versions.items()):
        ranked = sorted(by_code.items(), key=lambda item: (-len({r.label for r in item[1]}), len(item[0]), item[0]))
        for rank, (code, seen) in enumerate(ranked):
            labels = tuple(sorted({r.label for r in seen}))
            problem = problems.get((name, code))
            if rank and problem is None:
                problem = (f"another version of {name} was kept (written by {len({r.label for r in ranked[0][1]})} "
                           f"run(s), this one by {len(labels)})")
            out.append(Candidate(name, code, labels, max(r.score for r in seen), problem))
    return _reject_callers_of_rejected(out)


def _run_functions(trajectory: Sequence[Mapping[str, Any]]) -> list[DefinedFunction]:
    """The public functions a run defined (the last definition of a name wins), private helpers bundled in."""
    imports: dict[str, str] = {}
    defined: dict[str, DefinedFunction] = {}
    for step in trajectory:
        code = str(step.get("code") or "")
        for found in defined_functions(code, imports):
            defined[found.name] = found
        try:
            imports.update(imported_names(ast.parse(code)))
        except SyntaxError:
            pass
    return [_bundled(found, defined) for name, found in defined.items() if not name.startswith("_")]


def _bundled(found: DefinedFunction, defined: Mapping[str, DefinedFunction]) -> DefinedFunction:
    helpers, pending = {}, [n for n in found.calls if n.startswith("_")]
    while pending:
        name = pending.pop()
        if name in helpers or name not in defined:
            continue
        helpers[name] = defined[name]
        pending += [n for n in defined[name].calls if n.startswith("_")]
    if not helpers:
        return found
    code = normalise("\n\n".join([*(h.code for _, h in sorted(helpers.items())), found.code]))
    missing = tuple(sorted(set(found.missing).union(*(h.missing for h in helpers.values()))))
    calls = tuple(sorted(set(found.calls) - set(helpers)))
    return DefinedFunction(found.name, code, missing, calls)


def _problem(found: DefinedFunction, reserved: set[str]) -> str | None:
    if found.name in reserved:
        return f"{found.name} is named like an input or a sandbox function"
    if found.missing:
        names = ", ".join(found.missing)
        return f"not self-contained: reads {names}, defined by the run rather than passed as parameters"
    function = next(node for node in ast.parse(found.code).body
                    if isinstance(node, ast.FunctionDef) and node.name == found.name)
    if not ast.get_docstring(function):
        return "no docstring (a library function says what it returns)"
    return None


def _reject_callers_of_rejected(candidates: list[Candidate]) -> list[Candidate]:
    """A function calling a rejected one (and no kept version of it) cannot stand alone either."""
    changed = True
    while changed:
        changed = False
        kept = {c.name for c in candidates if c.problem is None}
        for index, candidate in enumerate(candidates):
            if candidate.problem is not None:
                continue
            lacking = sorted(n for n in _calls(candidate) if n not in kept and any(c.name == n for c in candidates))
            if lacking:
                candidates[index] = Candidate(candidate.name, candidate.code, candidate.runs, candidate.score,
                                              f"calls {', '.join(lacking)}, which was rejected")
                changed = True
    return candidates


def _calls(candidate: Candidate) -> set[str]:
    return called_names(candidate.code)


def solver_code(function: str, parameters: Sequence[str], inputs: Sequence[str], outputs: Sequence[str],
                returns_outputs: bool) -> str:
    """`solve.py` for a function that answers a whole task from (some of) the inputs: `solve` takes every
    input, as the RLM calls it, and returns the outputs (the function's dict of them when `returns_outputs`,
    else its value as the single output)."""
    call = f"{function}({', '.join(f'{name}={name}' for name in parameters)})"
    result = call if returns_outputs else "{" + f"{outputs[0]!r}: {call}" + "}"
    return normalise(
        f"def solve({', '.join(inputs)}):\n"
        f"    \"\"\"Solve the whole task with {function}: the outputs ({', '.join(outputs)}) as a dict.\"\"\"\n"
        f"    return {result}\n")
