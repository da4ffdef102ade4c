"""The `llm` CLI plugin: an `RLM` toolbox that runs the model's Python in dspy-rlm's eryx sandbox.

    llm -T 'RLM("notes/")' "Which files mention the outage, and when did it start?"

The entry point (`[project.entry-points.llm]` in pyproject.toml) makes `llm` import this module;
nothing in `dspy_rlm` imports it, so dspy-rlm works without `llm` installed. The toolbox's tools
are `RLM_execute_python(code)` and `RLM_submit_answer(answer)`. Code sees the context as the
variable `context` (and `files`, the index, when a folder or a converted file is read), and may
call `llm_query(prompt)` / `llm_query_batched(prompts)`, answered on the host by an `llm` model:
the one the command runs (`-m`), or the one named by `model=`. Steps have RLM's limits: a step
timeout, a memory cap, a restart after a crash, output cut in the middle, a sub-call budget.
Building a toolbox imports DSPy and eryx (`llm_session.py`); `llm` starting up does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import click
    import llm
except ImportError as missing:  # only `llm` loads this module; say which extra brings it
    raise ImportError("the llm plugin needs the llm extra: pip install 'dspy-rlm[llm]'") from missing

from dspy_rlm import settings

if TYPE_CHECKING:
    from dspy_rlm.integrations.llm_session import RLMSession

__all__ = ["RLM", "register_tools"]


@llm.hookimpl
def register_tools(register: Any) -> None:
    """llm's hook: make the `RLM` toolbox available to `llm -T RLM(...)` and `llm.get_tools()`."""
    register(RLM)


class RLM(llm.Toolbox):
    """Explore a large context (a file, a folder, stdin or text) by running Python in a sandbox.

    In `llm -T`, give one path (`RLM("logs/")`) or name every argument, values as JSON
    (`RLM(path="logs/", model="gpt-4o-mini", step_timeout=60)`): llm's spec syntax does not mix them.

    Args:
        path: a file or folder to load as `context` (folders via dspy_rlm.ingest, with a `files`
            index), or "-" for stdin (in the `llm` command, stdin is the prompt: pass a file).
        text: the context itself, instead of a path.
        model: the `llm` model `llm_query` asks (default: the command's `-m`, else llm's default).
        step_timeout: seconds one `execute_python` step may run, sub-queries included.
        memory_mb: the sandbox's memory cap.
        max_llm_calls: `llm_query` calls allowed over the toolbox's life.
        max_output_chars: characters of a step's output returned (head and tail kept).
        max_file_mb: the largest file read.
        isolated: run the sandbox in a worker process (a crash of eryx cannot take down `llm`).
    """

    def __init__(self, path: str | None = None, *, text: str | None = None, model: str | None = None,
                 step_timeout: float = settings.STEP_TIMEOUT_S, memory_mb: int = settings.MEMORY_MB,
                 max_llm_calls: int = settings.MAX_LLM_CALLS, max_output_chars: int = settings.MAX_OUTPUT_CHARS,
                 max_file_mb: float = settings.ASK_MAX_FILE_BYTES / 2**20, isolated: bool = False) -> None:
        from dspy_rlm.integrations.llm_session import RLMSession, load_context
        from dspy_rlm.sandbox import SandboxLimits

        try:  # a bad path or limit fails here, before the model is asked anything
            limits = SandboxLimits(step_timeout_s=step_timeout, memory_bytes=round(memory_mb * 2**20))
            context = load_context(path, text, max_file_bytes=round(max_file_mb * 2**20))
        except ValueError as problem:
            if click.get_current_context(silent=True) is None:
                raise
            raise click.ClickException(f"RLM: {problem}") from problem  # `Error: ...`, no traceback
        self._model_name = model or _command_model()
        self._model: Any = None
        self._session: RLMSession = RLMSession(context, self._ask, limits=limits, isolated=isolated,
                                               max_llm_calls=max_llm_calls, max_output_chars=max_output_chars)

    def execute_python(self, code: str) -> str:
        """Run Python code in a persistent sandbox and return what it printed, or its error.

        The variable `context` holds the text to explore (and `files`, when present, an index of
        the files in it: path, type, size, offset, chars, status, reason). Variables persist between
        calls. Look at the data with code (len, slicing, re, json) rather than printing it all:
        output is cut to its head and tail. `llm_query(prompt)` asks a language model about a
        chunk you put in the prompt; `llm_query_batched([prompts])` asks many at once. No network
        or host files are reachable. When done, call SUBMIT(answer=...) or the submit_answer tool.
        """
        return self._session.execute(code)

    def submit_answer(self, answer: str) -> str:
        """Give the final answer to the question; it is returned as given."""
        return self._session.submit(answer)

    @property
    def answer(self) -> str | None:
        """The submitted answer (by `submit_answer` or `SUBMIT(answer=...)` in code), if any."""
        return self._session.answer

    def _ask(self, prompt: str) -> str:
        """One `llm_query`: the sub-model's answer as text (called on the sandbox's host threads)."""
        if self._model is None:
            self._model = llm.get_model(self._model_name) if self._model_name else llm.get_model()
        return self._model.prompt(prompt).text()

    def _close(self) -> None:
        """Free the sandbox (a toolbox left open is freed when garbage collected)."""
        self._session.close()


def _command_model() -> str | None:
    """The model of the running `llm` command (`-m`), so sub-queries go to the model the user chose."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        name = ctx.params.get("model_id")
        if isinstance(name, str) and name:
            return name
        ctx = ctx.parent
    return None
