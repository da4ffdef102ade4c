"""Where a compiled program goes, and checks that stop a run before it spends anything.

- `choose_output`: a run never overwrites an earlier one's file unless asked to. The default name
  (`optimized/niah-gepa.json`) gets a number when taken (`niah-gepa-2.json`); an explicit path that
  exists is an error without `force`.
- `save_atomically`: the file appears whole or not at all (written beside it, then renamed), so an
  interrupted or failed run leaves nothing half-written.
- `check_models`: one short call to each real model, so a missing API key or an unknown model stops
  the run in seconds with one line, instead of scoring every row 0 and saving an empty program.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import dspy


def choose_output(folder: str | Path, stem: str, output: str | Path | None = None, force: bool = False) -> Path:
    """The path the compiled program will be saved to (see the module docstring)."""
    if output is not None:
        path = Path(output)
        if path.exists() and not force:
            raise ValueError(f"{path} already exists; pass force=True to overwrite it, or choose another output")
        return path
    path = Path(folder) / f"{stem}.json"
    return path if force else _unused(path)


def _unused(path: Path) -> Path:
    candidate, number = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


def save_atomically(program: dspy.Module, path: Path, *, overwrite: bool, renumber: bool) -> Path:
    """Save `program`'s JSON state to `path` whole or not at all; return the path written.

    If `path` was taken meanwhile (another run) and `overwrite` is off: with `renumber`, the next free
    numbered name is used; otherwise it is an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.json")
    os.close(handle)
    try:
        program.save(temporary)
        if overwrite:
            os.replace(temporary, path)
            return path
        while True:
            try:
                os.link(temporary, path)  # fails if the name exists: never replaces another run's file
                return path
            except FileExistsError:
                if not renumber:
                    raise ValueError(f"{path} already exists; pass force=True to overwrite it") from None
                path = _unused(path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def check_models(models: dict[str, Any]) -> None:
    """Call each real model (by role: root, sub, reflection, prompt) once with a short prompt; a failure
    is an `LMFailure` whose one-line message names the role, the model and the cause.

    Scripted and simulated models are skipped (they cannot fail this way, and a script would lose an answer)."""
    from dspy_rlm.core.secrets import error_text, remember_lms, scrubbed
    from dspy_rlm.errors import LMFailure
    from dspy_rlm.lms.scripted import ScriptedLM

    checked: set[int] = set()
    for role, lm in models.items():
        if not isinstance(lm, dspy.BaseLM) or isinstance(lm, ScriptedLM) or id(lm) in checked:
            continue
        checked.add(id(lm))
        remember_lms(lm)  # a provider may echo the key in its error
        try:
            lm("Reply with the word OK.")
        except Exception as error:
            text = error_text(error).strip()
            cause = text.splitlines()[0] if text else type(error).__name__
            raise LMFailure(f"the {role} model {getattr(lm, 'model', lm)} cannot be called: {cause}",
                            trajectory=[], best_answer=None, usage={}) from scrubbed(error)
