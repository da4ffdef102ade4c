"""`dspy-rlm ask QUESTION PATH...`: one RLM call over your own files and folders.

The paths are read with `dspy_rlm.ingest.corpus.read_corpus` (converted, cached by content
hash, `.gitignore` respected) into three inputs: `context` (every file's text after a header
line), `files` (the index: path, type, size, offset, chars, status, reason) and the question.
The live display, the usage table and the MLflow run are the demo's.

`--model sim` (the default) is the simulated model with the general "files" world
(`dspy_rlm.lms.simulated.files_world`): its code greps the files and its answers are computed
from them, but **it is not a language model**; its answers and figures say so.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import dspy
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dspy_rlm import RLM, settings
from dspy_rlm.lms.simulated.files_world import FilesWorld
from dspy_rlm.lms.simulated.lm import SIMULATED_LABEL, SimulatedLM
from dspy_rlm.observability.progress import RLMProgress
from dspy_rlm.observability.runs import BackgroundTracking, job_run
from dspy_rlm.observability.tracing import clip

EXPERIMENT = "dspy-rlm-ask"
SIMULATED_STRATEGY = "regex"  # grep the files for the question's key words, then ask about the hits
SHOWN_FILES = 15  # included files listed before "... and N more"
SHOWN_PROBLEMS = 30  # skipped or unreadable files listed with their reasons
INSTRUCTIONS = ("Answer the question from the files given. `context` holds the text of every file read; "
                "`files` indexes it, so a file's text can be read directly.")
CONTEXT_DESC = "the text of every file read, each after a header line '===== file: PATH (TYPE, SIZE bytes) ====='"
FILES_DESC = ("the index of the files: one dict per file with path, type, size (bytes of the source), offset and "
              "chars (file f's text is context[f['offset'] : f['offset'] + f['chars']]), status ('ok', 'skipped' "
              "or 'error') and reason (why it was not read)")
DEFAULT_SIGNATURE = "context: str, files: list[dict], question: str -> answer: str"


def add_parser(commands: argparse._SubParsersAction, megabytes: Any) -> None:
    """The `ask` subcommand's arguments (`megabytes`: main's checked type for --max-file-mb)."""
    ask = commands.add_parser("ask", help="ask a question about files and folders (text, code, JSON, CSV, "
                                          "HTML, PDF, DOCX); simulated model by default")
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("paths", nargs="*", metavar="PATH", help="files and folders to read (folders recursively)")
    ask.add_argument("--model", default="sim", help="a LiteLLM model name (keys from the environment); "
                                                    "'sim' (default): the simulated model, offline")
    ask.add_argument("--sub-model", help="LiteLLM name of the sub-model (default: --model)")
    ask.add_argument("--signature", help=f"a DSPy signature with `context` and `question` inputs "
                                         f"(default {DEFAULT_SIGNATURE!r}; `files` is added when missing)")
    ask.add_argument("--include", action="append", default=[], metavar="GLOB",
                     help="read only paths matching this gitignore-style glob (repeatable)")
    ask.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip paths matching this glob (repeatable)")
    ask.add_argument("--no-gitignore", dest="gitignore", action="store_false", help="read files .gitignore excludes too")
    ask.add_argument("--max-file-mb", type=megabytes, default=settings.ASK_MAX_FILE_BYTES / 2**20,
                     help=f"largest file read, in MB (default {settings.ASK_MAX_FILE_BYTES // 2**20}); larger ones are listed as skipped")
    ask.add_argument("--cache-dir", help="where converted texts are cached (default: the dspy-rlm cache folder, "
                                         "DSPY_RLM_CACHE_DIR or ~/.cache/dspy-rlm, under ingest/)")
    ask.add_argument("--max-iters", type=int, default=10, help="REPL steps at most (default 10)")
    ask.add_argument("--seed", type=int, default=0, help="seed of the simulated model")
    ask.add_argument("--tracking-uri", default=settings.TRACKING_URI, help="MLflow store ('' to disable)")
    ask.add_argument("--verbose", action="store_true", help="show the libraries' own log messages too")


def run(args: argparse.Namespace) -> int:
    """Run `dspy-rlm ask`; bad input is one line on stderr and exit status 2."""
    from dspy_rlm.errors import LMFailure
    from dspy_rlm.observability.report import print_figures

    try:
        figures = run_ask(args.question, args.paths, model=args.model, sub_model=args.sub_model,
                          signature=args.signature, include=args.include, exclude=args.exclude,
                          gitignore=args.gitignore, max_file_bytes=int(args.max_file_mb * 2**20),
                          max_iters=args.max_iters, seed=args.seed, tracking_uri=args.tracking_uri or None,
                          cache_dir=args.cache_dir)
    except ValueError as error:
        print(f"dspy-rlm ask: error: {error}", file=sys.stderr)
        return 2
    except LMFailure as error:  # an unknown --model, a missing API key
        print(f"dspy-rlm ask: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    # Answers quote files (log lines like '[ERROR] ...'): shown as written, not read as rich markup.
    print_figures(f"dspy-rlm ask: {figures['model']}", figures)
    return 0


def run_ask(question: str, paths: Sequence[str], *, model: str | None = "sim", sub_model: str | None = None,
            signature: str | None = None, include: Sequence[str] = (), exclude: Sequence[str] = (),
            gitignore: bool = True, max_file_bytes: int = settings.ASK_MAX_FILE_BYTES, max_iters: int = 10,
            seed: int = 0, tracking_uri: str | None = settings.TRACKING_URI, cache_dir: str | None = None,
            console: Console | None = None) -> dict[str, Any]:
    """Read `paths`, run the RLM on them with a live display, print the answer; return the figures.

    Raises ValueError with a one-line message for bad input (no question, no paths, a bad signature,
    nothing readable); problems with single files are listed and the job goes on."""
    from dspy_rlm.ingest.corpus import read_corpus

    began = time.perf_counter()
    console = console or Console()
    question = (question or "").strip()
    if not question:
        raise ValueError("the question is empty; ask something, e.g. dspy-rlm ask \"Which file mentions X?\" PATH")
    if not paths:
        raise ValueError("no PATH given; name the files or folders to read, e.g. dspy-rlm ask \"...\" ./docs")
    task_signature = ask_signature(signature)
    lm, sub_lm, simulated = _models(model, sub_model, seed)
    tracking = BackgroundTracking(tracking_uri, experiment=EXPERIMENT) if tracking_uri else None
    with console.status("reading the files"):
        corpus = read_corpus(list(paths), include=include, exclude=exclude, max_file_bytes=max_file_bytes,
                             respect_gitignore=gitignore, cache_dir=cache_dir)
    show_corpus(corpus, console)
    kind = SIMULATED_LABEL if simulated else f"language model {model}"
    console.print(f"model: {kind}" + (f" (strategy: {SIMULATED_STRATEGY})" if simulated else ""))
    console.print(f"question: {escape(clip(question, 300))}")
    rlm = RLM(task_signature, max_iters=max_iters, max_llm_calls=50, sub_lm=sub_lm)
    # The index the model saw, problems and reasons included, goes with the run.
    with job_run(tracking, "ask", _params(question, paths, corpus, lm, sub_lm), kind, console,
                 dicts={"files.json": corpus.index()}) as log_metrics:
        progress = _TimedProgress(console)
        started = time.perf_counter()
        with progress.live(), dspy.context(lm=lm):
            prediction = rlm(context=corpus.context, files=corpus.index(), question=question)
        figures = _figures(task_signature, prediction, corpus, kind, progress.first_step_at, began, started)
        log_metrics({k: v for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return figures


def ask_signature(text: str | None = None) -> type[dspy.Signature]:
    """The task signature: the default, or the user's with `files` added when missing (ValueError if unusable)."""
    if text is None:
        base = dspy.Signature(DEFAULT_SIGNATURE, INSTRUCTIONS)
        return base.with_updated_fields("context", desc=CONTEXT_DESC).with_updated_fields("files", desc=FILES_DESC)
    try:
        signature = dspy.ensure_signature(text)
    except Exception as error:  # DSPy raises ValueError, SyntaxError or TypeError for a bad string
        raise ValueError(f"--signature {text!r} is not a DSPy signature ({error}); "
                         f"e.g. {DEFAULT_SIGNATURE!r}") from None
    inputs = list(signature.input_fields)
    missing = [name for name in ("context", "question") if name not in inputs]
    if missing:
        raise ValueError(f"--signature needs the inputs context (the files' text) and question; "
                         f"{' and '.join(missing)} missing in {text!r}")
    if not signature.output_fields:
        raise ValueError(f"--signature {text!r} has no output; name one after '->', e.g. {DEFAULT_SIGNATURE!r}")
    extra = [name for name in inputs if name not in ("context", "files", "question")]
    if extra:
        raise ValueError(f"--signature may only have the inputs context, files and question; "
                         f"remove {', '.join(extra)} from {text!r}")
    if "files" not in inputs:
        signature = signature.append("files", dspy.InputField(desc=FILES_DESC), type_=list[dict])
    return signature


def show_corpus(corpus: Any, console: Console) -> None:
    """What was read: the included files (the first few), every problem with its reason, the cost."""
    ok = [f for f in corpus.files if f.status == "ok"]
    problems = [f for f in corpus.files if f.status != "ok"]
    table = Table(title=f"{len(ok)} files read, {len(problems)} not", show_edge=False)
    for column in ("path", "type", "size", "chars", "status"):
        table.add_column(column, justify="right" if column in ("size", "chars") else "left")
    for f in ok[:SHOWN_FILES]:
        table.add_row(escape(f.path), f.type, f"{f.size:,}", f"{f.chars:,}", "ok")
    if len(ok) > SHOWN_FILES:
        table.add_row(f"... and {len(ok) - SHOWN_FILES} more", "", "", "", "")
    for f in problems[:SHOWN_PROBLEMS]:
        table.add_row(escape(f.path), f.type, f"{f.size:,}", "-", escape(f"{f.status}: {f.reason}"))
    if len(problems) > SHOWN_PROBLEMS:
        table.add_row(f"... and {len(problems) - SHOWN_PROBLEMS} more not read", "", "", "", "")
    console.print(table)
    console.print(f"context: {_chars(corpus):,} characters; read in {corpus.seconds:.2f} s: "
                  f"{corpus.converted} converted, {corpus.cache_hits} from the cache")


class _TimedProgress(RLMProgress):
    """The demo's live display, noting when the first REPL step starts (time to first step)."""

    first_step_at: float | None = None

    def on_interpreter_execute_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()
        super().on_interpreter_execute_start(call_id, instance, inputs)


def _models(model: str | None, sub_model: str | None, seed: int) -> tuple[Any, Any, bool]:
    if model in (None, "", "sim"):
        if sub_model is not None:
            raise ValueError("--sub-model needs --model (the simulated model is both root and sub-model)")
        simulated = SimulatedLM(FilesWorld(), seed=seed, strategy=SIMULATED_STRATEGY)
        return simulated, simulated, True
    root = dspy.LM(model)
    return root, dspy.LM(sub_model) if sub_model else root, False


def _chars(corpus: Any) -> int:
    return corpus.chars or len(corpus.context)


def _params(question: str, paths: Sequence[str], corpus: Any, lm: Any, sub_lm: Any) -> dict[str, Any]:
    ok = sum(f.status == "ok" for f in corpus.files)
    return {"question": clip(question, 250), "paths": clip(", ".join(map(str, paths)), 250), "files_read": ok,
            "files_not_read": len(corpus.files) - ok, "context_chars": _chars(corpus),
            "root_model": lm.model, "sub_model": sub_lm.model}


def _figures(signature: type[dspy.Signature], prediction: dspy.Prediction, corpus: Any, kind: str,
             first_step_at: float | None, began: float, started: float) -> dict[str, Any]:
    usage = prediction.usage
    outputs = {name: clip(str(getattr(prediction, name, "")), 2000) for name in signature.output_fields}
    return {
        "model": kind,
        **outputs,
        "files_read": sum(f.status == "ok" for f in corpus.files),
        "files_not_read": sum(f.status != "ok" for f in corpus.files),
        "context_chars": _chars(corpus),
        "converted": corpus.converted,
        "cache_hits": corpus.cache_hits,
        "read_seconds": round(corpus.seconds, 2),  # reading and converting the files (cache hits are quick)
        # From the start of the work (reading the files, the MLflow store, the first model call) to the first REPL step.
        "first_step_seconds": round(first_step_at - began, 2) if first_step_at else -1.0,
        "iterations": len(prediction.trajectory),
        "sub_queries": usage["sub_calls"],
        "total_tokens": usage["total_tokens"],
        "run_seconds": round(time.perf_counter() - started, 2),  # the RLM call: model calls and sandbox steps
    }
