"""The `llm` CLI plugin: `llm -T 'RLM(...)'` runs a model's Python in dspy-rlm's sandbox.

Tested as llm tests its own plugins: a mock `llm.Model` registered through llm's plugin
manager for the test, here one whose turns are scripted tool calls, driven through
`model.chain(...)` and through llm's CLI with click's CliRunner. llm's user folder is a
tmp path (`LLM_USER_PATH`), so nothing touches ~/.config.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

llm = pytest.importorskip("llm")
from click.testing import CliRunner  # noqa: E402
from llm.cli import cli  # noqa: E402
from llm.plugins import pm  # noqa: E402

from dspy_rlm.integrations.llm_plugin import RLM  # noqa: E402



class ScriptedToolModel(llm.Model):
    """A tool-calling model whose turns are scripted. A prompt that offers tools takes the next
    turn: a list of (tool name, arguments) calls, or a function of the prompt giving the final
    text. A prompt without tools (an `llm_query` from sandbox code) is answered `sub: <prompt>`."""

    supports_tools = True
    can_stream = False

    def __init__(self, model_id: str = "rlm-scripted") -> None:
        self.model_id = model_id
        self.turns: list[Any] = []
        self.sub_prompts: list[str] = []
        self.tool_outputs: list[str] = []  # every tool result the model was sent, in order
        self._lock = threading.Lock()

    def execute(self, prompt: Any, stream: bool, response: Any, conversation: Any) -> Iterator[str]:
        if not prompt.tools:
            with self._lock:
                self.sub_prompts.append(prompt.prompt)
            yield f"sub: {prompt.prompt}"
            return
        self.tool_outputs += [result.output for result in prompt.tool_results or []]
        turn = self.turns.pop(0) if self.turns else (lambda p: "(script over)")
        if callable(turn):
            yield turn(prompt)
            return
        for name, arguments in turn:
            response.add_tool_call(llm.ToolCall(name=name, arguments=arguments))
        yield ""


def run(code: str) -> list[tuple[str, dict]]:
    return [("RLM_execute_python", {"code": code})]


def submit(answer: str) -> list[tuple[str, dict]]:
    return [("RLM_submit_answer", {"answer": answer})]


def last_result(prompt: Any) -> str:
    """A final turn that says the last tool result it was given."""
    return f"final: {prompt.tool_results[-1].output}"


class _Models:
    def __init__(self, *models: ScriptedToolModel) -> None:
        self.models = models

    @llm.hookimpl
    def register_models(self, register: Callable[..., None]) -> None:
        for model in self.models:
            register(model)


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedToolModel, ScriptedToolModel]]:
    """Two scripted models, `rlm-scripted` and `rlm-helper`, registered with llm for the test."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm-user"))
    pair = (ScriptedToolModel("rlm-scripted"), ScriptedToolModel("rlm-helper"))
    plugin = _Models(*pair)
    pm.register(plugin, name="dspy-rlm-test-models")
    try:
        yield pair
    finally:
        pm.unregister(plugin)


def chain(model: ScriptedToolModel, toolbox: RLM, *turns: Any, question: str = "question?") -> str:
    model.turns = list(turns)
    try:
        return model.conversation(chain_limit=20).chain(question, tools=[toolbox]).text()
    finally:
        toolbox._close()


# -- registration ----------------------------------------------------------------------------


def test_the_toolbox_is_registered_through_the_entry_point(models):
    """llm finds `RLM` through dspy-rlm's entry point, with its two tools."""
    assert llm.get_tools()["RLM"] is RLM
    listed = CliRunner().invoke(cli, ["tools", "list"])
    assert listed.exit_code == 0, listed.output
    assert "RLM_execute_python" in listed.output and "RLM_submit_answer" in listed.output


def test_importing_dspy_rlm_needs_no_llm_and_the_plugin_names_the_extra():
    """Without llm, dspy_rlm imports; the plugin module alone fails, naming the extra to install."""
    code = ("import sys; sys.modules['llm'] = None\n"
            "import dspy_rlm, dspy_rlm.integrations\n"
            "try:\n    import dspy_rlm.integrations.llm_plugin\n"
            "except ImportError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR the llm plugin needs the llm extra: pip install 'dspy-rlm[llm]'" in out.stdout


def test_llm_starting_up_does_not_import_dspy_or_eryx():
    """llm imports every plugin on each command: ours adds no DSPy or eryx until a toolbox is built."""
    code = ("import sys, llm\nassert 'RLM' in llm.get_tools()\n"
            "print(sorted(m for m in ('dspy', 'eryx', 'dspy_rlm.core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- steps in the sandbox --------------------------------------------------------------------


def test_variables_persist_between_execute_python_calls_and_context_is_loaded(models):
    """A variable set in one call is seen in the next; `context` holds the text given."""
    model, _ = models
    chain(model, RLM(text="hello sandbox"), run("n = len(context)"), run("print(n * 2, context.upper())"),
          last_result)
    assert model.tool_outputs[0].startswith("[inputs: `context` (str, 13 characters")
    assert model.tool_outputs[1] == "26 HELLO SANDBOX"


def test_llm_query_inside_code_reaches_the_model_the_toolbox_names(models):
    """`llm_query` and `llm_query_batched` in code are answered by the `model=` llm model."""
    model, helper = models
    toolbox = RLM(text="x", model="rlm-helper")
    chain(model, toolbox, run("print(llm_query('one'))\nprint(llm_query_batched(['a', 'b']))"), last_result)
    assert model.tool_outputs[-1].splitlines()[1:] == ["sub: one", "['sub: a', 'sub: b']"]
    assert sorted(helper.sub_prompts) == ["a", "b", "one"] and model.sub_prompts == []


def test_sub_queries_keep_rlm_budget_and_prompt_checks(models):
    """The sub-call budget and the prompt-size check hold, as errors the code can read."""
    model, _ = models
    toolbox = RLM(text="x", model="rlm-helper", max_llm_calls=1)
    code = ("print(llm_query('first'))\n"
            "for p in ['second', 'x' * 600_000]:\n"
            "    try:\n        llm_query(p)\n    except Exception as e:\n        print(type(e).__name__, e)")
    chain(model, toolbox, run(code), last_result)
    output = model.tool_outputs[-1]
    assert "sub: first" in output and "sub-LLM call budget exhausted: 1 of 1 calls used" in output
    assert "over the limit of 500,000" in output


def test_a_timeout_a_memory_error_and_a_crash_recover_with_the_context_back(models):
    """A step past its time, over the memory cap, or killing the guest is reported as RLM reports it;
    after a timeout or a crash the sandbox restarts with the context back, the variables gone."""
    model, _ = models
    toolbox = RLM(text="still here", step_timeout=3, memory_mb=256)
    chain(model, toolbox, run("x = 1"), run("while True:\n    pass"),
          run("y = 2\nbig = []\nwhile True:\n    big.append(bytearray(10_000_000))"),
          run("import posix\nposix.abort()"), run("print(context, 'x' in dir(), 'y' in dir())"), last_result)
    timeout, memory, crash, after = model.tool_outputs[1:5]
    assert "sandbox restarted after a timeout: variables lost: x" in timeout
    assert "MemoryError" in memory and "memory limit of 256 MiB" in memory
    assert crash.startswith("SandboxCrash") and "sandbox restarted after a crash" in crash
    assert after == "still here False False"


def test_an_isolated_toolbox_runs_steps_and_sub_queries_in_a_worker_process(models):
    """`isolated=True` keeps the sandbox in a worker process; variables and `llm_query` work the same."""
    model, helper = models
    chain(model, RLM(text="abc", model="rlm-helper", isolated=True), run("n = len(context)"),
          run("print(n, llm_query(context))"), last_result)
    assert model.tool_outputs[1] == "3 sub: abc" and helper.sub_prompts == ["abc"]


def test_a_long_output_is_cut_to_its_head_and_tail(models):
    """`max_output_chars` bounds what a step returns, keeping both ends, as RLM does."""
    model, _ = models
    chain(model, RLM(text="x", max_output_chars=300), run("print('HEAD' + 'a' * 50_000 + 'TAIL')"), last_result)
    output = model.tool_outputs[-1].split("\n", 1)[1]  # after the [inputs: ...] line
    assert len(output) < 600 and output.startswith("HEAD") and output.rstrip().endswith("TAIL")


def test_host_files_and_secrets_are_out_of_reach(models, monkeypatch: pytest.MonkeyPatch):
    """Code cannot open host files nor read the host's environment."""
    model, _ = models
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123456")
    code = ("import os\ntry:\n    open('/etc/passwd').read(); print('READ')\n"
            "except Exception as e:\n    print('blocked', type(e).__name__)\n"
            "print(os.environ.get('OPENAI_API_KEY'))")
    chain(model, RLM(text="x"), run(code), last_result)
    assert model.tool_outputs[-1].splitlines()[1:] == ["blocked FileNotFoundError", "None"]


# -- answers, context sources, the command ---------------------------------------------------


def test_submit_answer_and_submit_in_code_record_the_answer(models):
    """`submit_answer` returns and records the answer; `SUBMIT(answer=...)` in code does too."""
    model, _ = models
    toolbox = RLM(text="x")
    assert chain(model, toolbox, submit("42"), last_result) == "final: 42"
    assert toolbox.answer == "42"
    in_code = RLM(text="x")
    chain(model, in_code, run("SUBMIT(answer=str(6 * 7))"), last_result)
    assert in_code.answer == "42" and "[answer submitted: 42]" in model.tool_outputs[-1]


def test_context_comes_from_a_file_or_stdin_and_a_bad_path_is_named(models, tmp_path, monkeypatch):
    """A file path loads the file; "-" loads stdin; a missing path or empty stdin is a clear error."""
    model, _ = models
    notes = tmp_path / "notes.txt"
    notes.write_text("alpha\nbeta\n", encoding="utf-8")
    chain(model, RLM(str(notes)), run("print('beta' in context)"), last_result)
    assert model.tool_outputs[-1].endswith("True")
    monkeypatch.setattr(sys, "stdin", _Stdin("from stdin"))
    chain(model, RLM("-"), run("print(context)"), last_result)
    assert model.tool_outputs[-1].endswith("from stdin")
    with pytest.raises(ValueError, match="nowhere.txt"):
        RLM(str(tmp_path / "nowhere.txt"))
    monkeypatch.setattr(sys, "stdin", _Stdin(""))
    with pytest.raises(ValueError, match="save the input to a file"):
        RLM("-")


def test_a_folder_gives_context_and_a_files_index(models, tmp_path):
    """A folder is read by dspy_rlm.ingest: `files` indexes each file's place in `context`."""
    pytest.importorskip("dspy_rlm.ingest.corpus")
    model, _ = models
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("first file", encoding="utf-8")
    (tmp_path / "docs" / "b.md").write_text("# second", encoding="utf-8")
    code = "for f in files:\n    print(f['path'], repr(context[f['offset']:f['offset'] + f['chars']]))"
    chain(model, RLM(str(tmp_path / "docs")), run(code), last_result)
    output = model.tool_outputs[-1]
    assert "first file" in output and "# second" in output and "`files`" in output


def test_the_llm_command_runs_the_toolbox_and_sub_queries_use_its_model(models, tmp_path):
    """`llm -m MODEL -T 'RLM("file")' question`: steps run, `llm_query` asks MODEL, the answer prints."""
    model, helper = models
    data = tmp_path / "data.txt"
    data.write_text("the code word is heron", encoding="utf-8")
    ask = "import re\nprint(llm_query('word? ' + re.search(r'is (\\w+)', context)[1]))"
    model.turns = [run(ask), submit("heron"), last_result]
    result = CliRunner().invoke(cli, ["-m", "rlm-scripted", "-T", f'RLM("{data}")', "which code word?"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "final: heron"
    assert model.sub_prompts == ["word? heron"] and helper.sub_prompts == []


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def read(self) -> str:
        return self.text

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("arguments, named", [
    ('"{missing}"', "{missing}"),
    ('path="{data}", step_timeout=0', "step_timeout_s"),  # llm's spec syntax: all positional or all named
])
def test_the_llm_command_reports_a_bad_path_or_limit_as_an_error_not_a_traceback(models, tmp_path, arguments, named):
    """`llm -T 'RLM(...)'` with a missing path or a bad limit ends with `Error: RLM: ...` naming it,
    before any model call."""
    model, _ = models
    (tmp_path / "data.txt").write_text("x", encoding="utf-8")
    paths = {"missing": tmp_path / "missing.txt", "data": tmp_path / "data.txt"}
    spec = "RLM(" + arguments.format(**paths) + ")"
    result = CliRunner().invoke(cli, ["-m", "rlm-scripted", "-T", spec, "q"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.startswith("Error: RLM: ") and named.format(**paths) in result.output
    assert model.tool_outputs == [] and model.sub_prompts == []
