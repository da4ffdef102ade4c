"""A live progress display for RLM calls, as a DSPy callback (no change to the module needed).

    progress = RLMProgress()
    with progress.live():          # adds the display to the callbacks already configured
        rlm(context=..., query=...)

It draws from the events an RLM fires (see `dspy_rlm/core/events.py`): each step
is printed when it starts to run (reasoning and the first line of its code) and
its output as soon as it has run; a status line counts steps and sub-queries.

`adding_callbacks(*callbacks)` adds callbacks to the current ones for a block.
Use it, not `dspy.context(callbacks=[...])`, which *replaces* them, MLflow
autolog's included (the trace is then lost).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import dspy
from dspy.utils.callback import BaseCallback
from rich.console import Console
from rich.markup import escape


@contextlib.contextmanager
def adding_callbacks(*callbacks: BaseCallback) -> Iterator[None]:
    """Add `callbacks` to the configured ones (each once) for the block, keeping MLflow autolog's."""
    current = list(dspy.settings.get("callbacks", None) or [])
    added = [c for i, c in enumerate(callbacks) if c not in current and c not in callbacks[:i]]
    with dspy.context(callbacks=[*current, *added]):
        yield


class RLMProgress(BaseCallback):
    """Prints an RLM call's steps as they happen and counts its sub-queries."""

    def __init__(self, console: Console | None = None, output_lines: int = 4):
        self.console = console or Console()
        self.output_lines = output_lines
        self.steps = 0
        self.sub_queries = 0
        self.children = 0  # child runs (rlm_query, max_depth >= 2)
        self._status: Any = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def live(self) -> Iterator["RLMProgress"]:
        """Show a status line (steps, sub-queries) and print the steps of RLM calls made in the block."""
        with adding_callbacks(self), self.console.status("starting") as status:
            self._status = status
            try:
                yield self
            finally:
                self._status = None

    def on_interpreter_execute_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        with self._lock:
            self.steps += 1
            number = self.steps
        code = (inputs.get("code") or "").strip()
        first = code.splitlines()[0] if code else "(no code)"
        depth = inputs.get("depth", 1)  # a child run's step is indented by its depth
        indent, label = "  " * (depth - 1), f" [cyan](depth {depth})[/cyan]" if depth > 1 else ""
        self.console.print(f"{indent}[bold]step {number}[/bold]{label} {escape(inputs.get('reasoning') or '')}")
        self.console.print(f"{indent}  [dim]{escape(first)} ... ({len(code.splitlines())} lines)[/dim]")
        self._update()

    def on_interpreter_execute_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        if exception is not None:
            self.console.print(f"  [red]{escape(f'{type(exception).__name__}: {exception}')}[/red]")
        elif isinstance(outputs, dict):
            self.show_output(outputs.get("output") or "")

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        name = getattr(instance, "name", None)
        if name in ("llm_query", "rlm_query"):  # one per prompt or child, batched slots included
            with self._lock:
                if name == "llm_query":
                    self.sub_queries += 1
                else:
                    self.children += 1
            self._update()

    def show_output(self, output: str) -> None:
        """Print the head of a step's output."""
        lines = output.strip().splitlines()
        shown = lines[: self.output_lines]
        if len(lines) > self.output_lines:
            shown.append(f"... ({len(lines) - self.output_lines} more lines)")
        for line in shown:
            self.console.print(f"  [green]>[/green] {escape(line[:160])}")

    def _update(self) -> None:
        if self._status is not None:
            children = f" · {self.children} child runs" if self.children else ""
            self._status.update(f"RLM step {self.steps} · {self.sub_queries} sub-queries{children}")
