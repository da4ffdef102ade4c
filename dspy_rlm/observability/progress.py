"""A live progress display for RLM calls, as a DSPy callback (no change to the module needed).

    progress = RLMProgress()
    with progress.live(), dspy.context(callbacks=[progress]):
        rlm(context=..., query=...)

Each step is printed when the root model has written it (reasoning and the
first line of its code), and its output when the next step starts (that is
when the REPL history shows it). A status line counts steps and sub-queries.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

from dspy.utils.callback import BaseCallback
from rich.console import Console
from rich.markup import escape

from dspy_rlm.core.transcript import parse_history


class RLMProgress(BaseCallback):
    """Prints an RLM call's steps as they happen and counts its sub-queries."""

    def __init__(self, console: Console | None = None, output_lines: int = 4):
        self.console = console or Console()
        self.output_lines = output_lines
        self.steps = 0
        self.sub_queries = 0
        self._roots: set[str] = set()
        self._status: Any = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def live(self) -> Iterator["RLMProgress"]:
        """Show a status line (steps, sub-queries) while the block runs."""
        with self.console.status("starting") as status:
            self._status = status
            try:
                yield self
            finally:
                self._status = None

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        role = _role(instance)
        if role == "root":
            with self._lock:
                self._roots.add(call_id)
                self.steps += 1
            fields = inputs.get("kwargs", inputs)  # DSPy passes Predict.__call__'s arguments as given
            self.show_output(fields.get("repl_history") or "")
        elif role == "sub":
            with self._lock:
                self.sub_queries += 1
        if role:
            self._update()

    def on_module_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
        with self._lock:
            if call_id not in self._roots:
                return
            self._roots.discard(call_id)
        if outputs is None:
            return
        code = (outputs.get("code") or "").replace("```python", "").replace("```", "").strip()
        first = code.splitlines()[0] if code else "(no code)"
        self.console.print(f"[bold]step {self.steps}[/bold] {escape(outputs.get('reasoning') or '')}")
        self.console.print(f"  [dim]{escape(first)} ... ({len(code.splitlines())} lines)[/dim]")

    def show_output(self, history: str) -> None:
        """Print the head of the last step's output in a REPL history."""
        entries = parse_history(history)
        if not entries:
            return
        lines = entries[-1].output.strip().splitlines()
        shown = lines[: self.output_lines]
        if len(lines) > self.output_lines:
            shown.append(f"... ({len(lines) - self.output_lines} more lines)")
        for line in shown:
            self.console.print(f"  [green]>[/green] {escape(line[:160])}")

    def _update(self) -> None:
        if self._status is not None:
            self._status.update(f"RLM step {self.steps} · {self.sub_queries} sub-queries")


def _role(instance: Any) -> str | None:
    """'root' for the code-writing predictor, 'sub' for the sub-query one, by their fields."""
    signature = getattr(instance, "signature", None)
    if signature is None:
        return None
    fields = list(signature.output_fields)
    if fields == ["reasoning", "code"] and "repl_history" in signature.input_fields:
        return "root"
    if fields == ["response"] and list(signature.input_fields) == ["prompt"]:
        return "sub"
    return None
