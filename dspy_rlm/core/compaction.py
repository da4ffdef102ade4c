"""History compaction: older steps summarized when `repl_history` nears the model's window.

A long run's history can outgrow the root model's context window. With
`RLM(..., compact_at=0.5)`, once the history text would pass that share of the
window, every step but the last few is summarized by the `compact` predictor (a
`dspy.Predict` optimizers tune like the others). The summary replaces those steps in
the prompt; their full text is put in the sandbox as the variable `full_history`, so
code can still read exact values, and the summary block says so.

This module owns the summary block's format: `format_compacted` writes it and
`split_compacted` reads it back (the simulated model uses both ends).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError, LMError

from dspy_rlm import settings
from dspy_rlm.core.secrets import error_text
from dspy_rlm.errors import BudgetExceeded, SandboxError
from dspy_rlm.core.transcript import format_history

logger = logging.getLogger("dspy_rlm")
FULL_HISTORY = "full_history"  # the sandbox variable holding the summarized steps' full text
SUMMARY_HEADER = "=== Steps {first}-{last}, summarized ===\n"
FULL_TEXT_NOTE = ("\n[The full text of steps {first}-{last} ({chars:,} characters) is in the variable "
                  f"`{FULL_HISTORY}`: read exact values from it with code.]")
BLOCK_SEPARATOR = "\n\n"
_HEADER = re.compile(r"=== Steps (?P<first>\d+)-(?P<last>\d+), summarized ===\n")
_NOTE = re.compile(r"\n\[The full text of steps \d+-\d+ \((?P<chars>[\d,]+) characters\) is in the variable "
                   rf"`{FULL_HISTORY}`: read exact values from it with code\.\]")


class CompactHistory(dspy.Signature):
    """Summarize these earlier steps of a Python REPL session so the work can go on without them. Keep
    what later steps need: facts and numbers found, variables defined (their names and what they hold),
    approaches that failed and why, and what remains to do. Be concise; do not invent anything."""

    task: str = dspy.InputField(desc="What the session must produce")
    repl_history: str = dspy.InputField(desc="The steps to summarize: reasoning, code and output")
    summary: str = dspy.OutputField(desc="A concise summary of the steps")


@dataclass(frozen=True)
class CompactionPolicy:
    """When to compact.

    Args:
        share: of the context window the history may fill before it is compacted (0 < share < 1).
        context_window: the root model's window in tokens; None: from litellm's model info, else
            `settings.DEFAULT_CONTEXT_WINDOW`.
        keep_recent: the most recent steps always shown in full.
    """

    share: float
    context_window: int | None = None
    keep_recent: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.share < 1:
            raise ValueError(f"compact_at must be a share of the context window between 0 and 1, got {self.share!r}")
        if self.context_window is not None and self.context_window < 1:
            raise ValueError(f"context_window must be a positive number of tokens, got {self.context_window!r}")

    def threshold_chars(self, lm: Any) -> int:
        """Characters of history that trigger compaction for `lm` (tokens estimated at 4 characters)."""
        window = self.context_window or model_window(lm) or settings.DEFAULT_CONTEXT_WINDOW
        return int(self.share * window * settings.CHARS_PER_TOKEN)


def model_window(lm: Any) -> int | None:
    """The input window litellm knows for `lm`'s model, or None."""
    model = getattr(lm, "model", None)
    if not isinstance(model, str):
        return None
    try:
        import litellm

        info = litellm.get_model_info(model)
    except Exception:  # unknown models (local, simulated, scripted) have no info: use the default
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if isinstance(window, (int, float)) and window > 0 else None


@dataclass(frozen=True)
class Compacted:
    """Steps `first`..`last` as their summary, and the length of their full text."""

    first: int
    last: int
    summary: str
    full_chars: int

    def format(self) -> str:
        return (SUMMARY_HEADER.format(first=self.first, last=self.last) + self.summary.strip()
                + FULL_TEXT_NOTE.format(first=self.first, last=self.last, chars=self.full_chars))


def format_compacted(compacted: Compacted | None, rest: str) -> str:
    """The `repl_history` text: the summary block (if any), then the later steps' blocks."""
    return rest if compacted is None else compacted.format() + BLOCK_SEPARATOR + rest


def split_compacted(text: str) -> tuple[Compacted | None, str]:
    """A `repl_history` text as its summary block (None if it has none) and the text of the later steps."""
    header = _HEADER.match(text)
    if header is None:
        return None, text
    note = _NOTE.search(text, header.end())
    if note is None:  # not a block this module wrote
        return None, text
    compacted = Compacted(int(header["first"]), int(header["last"]), text[header.end():note.start()],
                          int(note["chars"].replace(",", "")))
    rest = text[note.end():]
    return compacted, rest.removeprefix(BLOCK_SEPARATOR)


@dataclass(frozen=True)
class CompactionRequest:
    """Steps to summarize now: the `compact` predictor's inputs, and what the sandbox will hold."""

    upto: int  # steps[:upto] are summarized
    inputs: dict[str, str]
    full_text: str  # every summarized step, in full (the `full_history` variable)


class HistoryCompactor:
    """The compaction state of one run: which steps are summarized, and the summary."""

    def __init__(self, policy: CompactionPolicy | None, task: str):
        self.policy, self.task = policy, task
        self.compacted: Compacted | None = None
        self.upto = 0  # steps before this index are in the summary

    def text(self, steps: list[Any], max_output_chars: int) -> str:
        """The `repl_history` text: the summary block, then the later steps."""
        if self.compacted is None:
            return format_history(steps, max_output_chars)
        later = steps[self.upto:]
        return format_compacted(self.compacted, format_history(later, max_output_chars)) if later else self.compacted.format()

    def request(self, steps: list[Any], max_output_chars: int, lm: Any) -> CompactionRequest | None:
        """What to summarize, if the history has outgrown the policy's share of `lm`'s window."""
        policy = self.policy
        if policy is None or len(steps) - self.upto <= policy.keep_recent:
            return None
        if len(self.text(steps, max_output_chars)) <= policy.threshold_chars(lm):
            return None
        upto = len(steps) - policy.keep_recent
        shown = format_history(steps[self.upto:upto], max_output_chars)
        earlier = self.compacted.format() + BLOCK_SEPARATOR if self.compacted else ""
        full = format_history(steps[:upto], settings.TRAJECTORY_TEXT_CHARS, settings.TRAJECTORY_TEXT_CHARS,
                              settings.TRAJECTORY_TEXT_CHARS)
        return CompactionRequest(upto, {"task": self.task, "repl_history": earlier + shown}, full)

    def apply(self, request: CompactionRequest, summary: str, steps: list[Any]) -> None:
        """Replace `steps[:request.upto]` by `summary` in the history text."""
        first = steps[0].iteration if steps else 1
        self.compacted = Compacted(first, steps[request.upto - 1].iteration, summary or "(no summary)",
                                   len(request.full_text))
        self.upto = request.upto

    def compact(self, models: Any, sandbox: Any, steps: list[Any], max_output_chars: int) -> None:
        """Summarize older steps with `models` (the run's `ModelCalls`) if the history is due; the full
        text goes into `sandbox` as `full_history`. A failed summary leaves the full history in place."""
        request = self.request(steps, max_output_chars, models.root_lm())
        if request is not None:
            try:
                self._done(request, models.call("compact", **request.inputs), sandbox, steps)
            except (AdapterParseError, LMError, BudgetExceeded, SandboxError) as error:
                logger.warning("RLM history compaction failed; the full history is used: %s", error_text(error))

    async def acompact(self, models: Any, sandbox: Any, steps: list[Any], max_output_chars: int) -> None:
        request = self.request(steps, max_output_chars, models.root_lm())
        if request is not None:
            try:
                self._done(request, await models.acall("compact", **request.inputs), sandbox, steps)
            except (AdapterParseError, LMError, BudgetExceeded, SandboxError) as error:
                logger.warning("RLM history compaction failed; the full history is used: %s", error_text(error))

    def _done(self, request: CompactionRequest, summarized: Any, sandbox: Any, steps: list[Any]) -> None:
        sandbox.set_inputs({FULL_HISTORY: request.full_text})  # exact values stay reachable from code
        self.apply(request, summarized.summary, steps)
