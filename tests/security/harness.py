"""Running one probe as a model-written step through `RLM` (in process, or in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

CONTEXT = "the inputs of the task: " + "lorem ipsum " * 50
MARKER = 41
RECOVERED = "SUBMIT(answer=f\"{len(context)}:{globals().get('marker')}\")"
OPTIONS = {"step_timeout": 1.5, "max_memory_mb": 256, "max_llm_calls": 2, "max_iters": 6}


def expected_answer(survives: bool) -> str:
    return f"{len(CONTEXT)}:{MARKER if survives else None}"


def root_model(probe_code: str):
    """Step 1 sets `marker`, step 2 is the probe, every later step submits length and marker."""
    from dspy_rlm import ScriptedLM
    from tests.helpers import step

    def answer(request):
        done = (request.field("repl_history") or "").count("=== Step")
        return step(f"marker = {MARKER}" if done == 0 else probe_code if done == 1 else RECOVERED)

    return ScriptedLM(answer, model="scripted/prober")


def sub_model():
    from dspy_rlm import ScriptedLM

    return ScriptedLM(lambda request: {"response": "a sub-model answer"}, model="scripted/sub")


def run_probe(code: str, **options):
    """Run one probe through `RLM`; return the prediction and the root model (its requests)."""
    import dspy

    from dspy_rlm import RLM

    root = root_model(code)
    with dspy.context(lm=root):
        result = RLM("context -> answer", sub_lm=sub_model(), **{**OPTIONS, **options})(context=CONTEXT)
    return result, root


def run_in_subprocess(codes: list[str], *, mode: str = "rlm", timeout: float = 180) -> subprocess.CompletedProcess:
    """Run probes in a fresh Python (so one that aborts the process can't take the tests with it).

    The last stdout line is a JSON list, one report per probe: through `RLM` (mode "rlm", or
    "isolated" with `isolate_process=True`: answer, probe step and error kind), or straight
    through a `Sandbox` (mode "sandbox": output, error kind, and a later step), which starts faster."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), mode], input=json.dumps(codes),
                          capture_output=True, text=True, timeout=timeout, cwd=root, env=env)


def _report(code: str, mode: str) -> dict:
    if mode == "sandbox":
        from dspy_rlm.sandbox import Sandbox, SandboxLimits  # the sandbox layer alone: no DSPy import

        limits = SandboxLimits(step_timeout_s=OPTIONS["step_timeout"], memory_bytes=OPTIONS["max_memory_mb"] << 20)
        with Sandbox({"context": CONTEXT}, limits=limits) as sandbox:
            step = sandbox.run(code)
            return {"output": step.observation, "error": step.error_kind, "after": sandbox.run("print(len(context))").stdout}
    result, _ = run_probe(code, isolate_process=mode == "isolated")
    probe = result.trajectory[1]
    return {"answer": result.answer, "output": probe["output"], "error": probe["error"]}


if __name__ == "__main__":
    reports = [_report(code, sys.argv[1]) for code in json.loads(sys.stdin.read())]
    print(json.dumps(reports))
