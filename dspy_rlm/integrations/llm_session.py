"""One `RLM` toolbox's state for the `llm` plugin: the loaded context, the sandbox, sub-queries.

Kept apart from `llm_plugin.py` so that `llm` starting up (it imports every plugin on each
command) does not import DSPy or eryx: this module is imported when a toolbox is built.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dspy_rlm import settings
from dspy_rlm.core.budget import CallBudget, UsageLedger
from dspy_rlm.core.outputs import termination_code
from dspy_rlm.core.secrets import guarded
from dspy_rlm.core.subqueries import SubQueries
from dspy_rlm.sandbox import IsolatedSandbox, Sandbox, SandboxLimits, StepResult
from dspy_rlm.errors import SandboxError

__all__ = ["LoadedContext", "RLMSession", "load_context"]

_ANSWER = "answer"  # the output SUBMIT takes in code: SUBMIT(answer=...), like the submit_answer tool


@dataclass(frozen=True)
class LoadedContext:
    """The sandbox inputs a toolbox was built with, and a one-line summary the model is shown."""

    inputs: dict[str, Any]
    summary: str


def load_context(path: str | None, text: str | None, *, max_file_bytes: int) -> LoadedContext:
    """`context` (and `files`, for what `read_corpus` reads) from `text`, stdin (`-`), a file or a folder."""
    if text is not None:
        if path is not None:
            raise ValueError("RLM takes a path or text=, not both; pass one of them")
        return _text_context(text, "the text given")
    if path is None:
        raise ValueError('RLM needs the context to read: a file or folder path, "-" for stdin, or text="..."')
    if path == "-":
        return _text_context(_read_stdin(), "stdin")
    return _path_context(path, max_file_bytes)


def _read_stdin() -> str:
    data = sys.stdin.read()
    if not data:
        raise ValueError(
            'RLM("-") found stdin empty. The llm command reads piped input as its own prompt, '
            "so save the input to a file and pass its path instead: llm -T 'RLM(\"input.txt\")' \"question\""
        )
    return data


def _text_context(text: str, where: str) -> LoadedContext:
    return LoadedContext({"context": text}, f"`context` (str, {len(text):,} characters, from {where})")


def _path_context(path: str, max_file_bytes: int) -> LoadedContext:
    try:
        from dspy_rlm.ingest.corpus import read_corpus
    except ImportError:  # the ingest part is optional here: a single file is read as text
        return _plain_file_context(path, max_file_bytes)
    corpus = read_corpus([path], max_file_bytes=max_file_bytes)
    index = corpus.index()
    ok = sum(1 for entry in index if entry.get("status") == "ok")
    chars = _length(corpus.context)
    summary = (f"`context` ({chars:,} characters: {ok} of {len(index)} files from {path}, each after a "
               "separator line) and `files` (a list of dicts: path, type, size, offset, chars, status, reason; "
               "`context[f['offset']:f['offset'] + f['chars']]` is one file's text)")
    return LoadedContext({"context": corpus.context, "files": index}, summary)


def _plain_file_context(path: str, max_file_bytes: int) -> LoadedContext:
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a folder (reading folders needs dspy_rlm.ingest)" if file.is_dir() else "does not exist"
        raise ValueError(f"RLM cannot read {path!r}: it {what}; pass the path of a text file")
    size = file.stat().st_size
    if size > max_file_bytes:
        raise ValueError(f"{path!r} is {size:,} bytes, over the cap of {max_file_bytes:,}; "
                         "pass max_file_mb= to raise it")
    return _text_context(file.read_text(encoding="utf-8", errors="replace"), path)


def _length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


class LLMSubQueries(SubQueries):
    """RLM's sub-queries (prompt checks, call budget, concurrency cap, records) answered by an `llm`
    model instead of a DSPy predictor. `ask(prompt)` returns the model's text."""

    def __init__(self, ask: Callable[[str], str], *, max_llm_calls: int, max_prompt_chars: int,
                 max_concurrency: int) -> None:
        super().__init__(None, None, CallBudget(max_llm_calls), UsageLedger(),
                         max_prompt_chars=max_prompt_chars, max_concurrency=max_concurrency)
        self._ask_model = ask

    def _ask_now(self, prompt: str, model: str | None = None) -> str:  # no named sub-models here: model is None
        with self._recorded(prompt, model) as answer:
            answer.append(self._ask_model(prompt))
        return answer[0]


class RLMSession:
    """A persistent sandbox over the loaded context; `execute` runs a step, `submit` records the answer."""

    def __init__(self, context: LoadedContext, ask: Callable[[str], str], *, limits: SandboxLimits,
                 isolated: bool, max_llm_calls: int, max_output_chars: int = settings.MAX_OUTPUT_CHARS,
                 max_prompt_chars: int = settings.MAX_PROMPT_CHARS,
                 max_concurrency: int = settings.MAX_CONCURRENCY) -> None:
        self.context = context
        self.sub_queries = LLMSubQueries(ask, max_llm_calls=max_llm_calls, max_prompt_chars=max_prompt_chars,
                                         max_concurrency=max_concurrency)
        self.limits = limits
        self.factory = IsolatedSandbox if isolated else Sandbox
        self.max_output_chars = max_output_chars
        self.answer: str | None = None
        self.steps = 0
        self._sandbox: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        if self._sandbox is None:
            functions = {name: guarded(fn) for name, fn in self.sub_queries.functions().items()}
            self._sandbox = self.factory(self.context.inputs, functions, limits=self.limits,
                                         setup_code=termination_code([_ANSWER]),
                                         max_output_chars=self.max_output_chars)
        return self._sandbox

    def execute(self, code: str) -> str:
        """Run one step; its output, errors and notes as the model should see them."""
        with self._lock:
            try:
                result = self._open().run(code)
            except SandboxError as error:  # it could not restart: the next call starts a new one
                self._sandbox = None
                return (f"SandboxCrash: {error}\n[the sandbox could not be restarted; the next call starts a "
                        "fresh one with the context loaded again]")
            self.steps += 1
            return self._observation(result)

    def _observation(self, result: StepResult) -> str:
        text = result.observation
        if self.steps == 1:
            text = f"[inputs: {self.context.summary}]\n{text}"
        self.sub_queries.take_records()  # one step's records: not kept, so a long session does not grow
        if result.submitted:
            submission = result.submission
            value = submission.get(_ANSWER) if isinstance(submission, dict) else None
            if value is None:
                return f"{text}\n[SUBMIT needs answer=...: call SUBMIT(answer=...) or the submit_answer tool]"
            self.answer = value if isinstance(value, str) else str(value)
            return f"{text}\n[answer submitted: {self.answer}]"
        return text

    def submit(self, answer: Any) -> str:
        """Record the final answer; return it."""
        self.answer = answer if isinstance(answer, str) else str(answer)
        return self.answer

    def close(self) -> None:
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None
