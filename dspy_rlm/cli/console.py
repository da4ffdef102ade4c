"""What the `dspy-rlm` command shows: its own progress, not the libraries' chatter; and a clean Ctrl-C.

`quiet_libraries()` turns down what DSPy, GEPA, MLflow, LiteLLM and tqdm print by themselves
(GEPA's INFO lines carry whole instructions; its evaluations draw tqdm bars; MLflow announces
database migrations and artifact downloads). Warnings and errors still show; `--verbose` keeps
everything. tqdm reads its environment when it is imported, so this runs before the commands
import anything heavy.

`interrupt_cleanly()` makes Ctrl-C end a command with one line and exit status 130: the MLflow runs it
opened are marked KILLED, nothing is saved (outputs are written atomically at the end), and the
process leaves without the interpreter's shutdown, which can crash (SIGSEGV) or hang while worker
threads are still inside the WebAssembly runtime.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Iterator

QUIET_ENVIRONMENT = {
    "TQDM_DISABLE": "1",  # GEPA's and dspy.Evaluate's progress bars
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # MLflow sets its loggers' level from this when imported
    "LITELLM_LOG": "ERROR",
}
QUIET_LOGGERS = ("dspy", "gepa", "mlflow", "LiteLLM", "litellm", "httpx", "alembic")
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C
GRACE_SECONDS = 3.0  # after Ctrl-C, how long the command may take to unwind before it is ended anyway


@contextlib.contextmanager
def quiet_libraries(verbose: bool = False) -> Iterator[None]:
    """Quiet the libraries' own output while the block runs (nothing changes with `verbose`).
    Variables already set in the environment are respected; everything is restored afterwards."""
    if verbose:
        yield
        return
    saved_environment = {name: os.environ.get(name) for name in QUIET_ENVIRONMENT}
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    import dspy  # noqa: F401  (dspy sets its logger to INFO when imported: import it before turning it down)
    import tqdm

    # dspy.Evaluate passes `disable=False` explicitly inside GEPA (so TQDM_DISABLE cannot win there) and
    # looks the class up as `tqdm.tqdm` on each call: a silent subclass there, for this block only.
    loud_tqdm = tqdm.tqdm
    tqdm.tqdm = type("SilentTqdm", (loud_tqdm,), {"__init__": _silent_init(loud_tqdm)})

    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    saved_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        tqdm.tqdm = loud_tqdm
        for logger, level in zip(loggers, saved_levels):
            logger.setLevel(level)
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _silent_init(base: type):
    def __init__(self, *args, **kwargs):  # noqa: N807
        kwargs["disable"] = True
        base.__init__(self, *args, **kwargs)
    return __init__


class _Interrupt:
    def __init__(self, command: str, leave_process: bool):
        self.command = command
        self.leave_process = leave_process
        self.seen = False
        self._done = threading.Lock()

    def on_signal(self, signum: int, frame: object) -> None:
        if self.seen:  # a second Ctrl-C: leave now
            self.finish()
        self.seen = True
        if self.leave_process:  # if unwinding hangs (threads joined in the runtime), end it anyway
            threading.Thread(target=self._after_grace, daemon=True).start()
        raise KeyboardInterrupt

    def _after_grace(self) -> None:
        threading.Event().wait(GRACE_SECONDS)
        self.finish()

    def finish(self) -> int:
        """Mark the open runs KILLED, print one line, and leave (or return 130 when called in process)."""
        if not self._done.acquire(blocking=False):
            return INTERRUPTED_EXIT  # the other path is already finishing
        killed: list[str] = []
        if "mlflow" in sys.modules:
            from dspy_rlm.observability.runs import kill_open_runs

            killed = kill_open_runs()
        runs = f"; MLflow run {', '.join(killed)} marked KILLED" if killed else ""
        if sys.stderr.isatty():
            sys.stderr.write("\x1b[?25h")  # the live display hides the cursor; give it back
        print(f"dspy-rlm {self.command}: interrupted (Ctrl-C){runs}; nothing was saved", file=sys.stderr)
        if self.leave_process:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(INTERRUPTED_EXIT)
        return INTERRUPTED_EXIT


@contextlib.contextmanager
def interrupt_cleanly(command: str, leave_process: bool) -> Iterator[_Interrupt]:
    """Handle Ctrl-C for one command (see the module docstring). `leave_process` is for the real
    command line: the process ends with `os._exit(130)`; in process (tests) `finish()` returns 130."""
    interrupt = _Interrupt(command, leave_process)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupt.on_signal) if in_main else None
    try:
        yield interrupt
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
