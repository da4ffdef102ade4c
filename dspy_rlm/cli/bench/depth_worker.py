"""One measurement of the depth-2 bench, in a fresh process of the framework's own venv:

    python depth_worker.py '<job as JSON>'      # prints one line `DEPTH-RESULT {...}`

Run as a script by path (the `rlms` venv has no dspy_rlm), so only the standard library is
imported at the top; each framework is imported inside its own function. The job carries the
server's URL, the root's input, the query and the limits; the worker times the whole call.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, Callable

MARKER = "DEPTH-RESULT "


def run_dspy_rlm(job: dict) -> dict:
    """`dspy_rlm.RLM` at `max_depth=2`; every sandbox it builds (root and children) is counted."""
    import dspy

    from dspy_rlm import RLM, Sandbox

    built: list[str] = []
    lock = threading.Lock()

    def counting_factory(*args: Any, **kwargs: Any) -> Any:
        sandbox = Sandbox(*args, **kwargs)
        with lock:
            built.append(type(sandbox).__name__)
        return sandbox

    lm = dspy.LM("openai/bench", api_base=job["api_base"], api_key="x", cache=False)
    rlm = RLM("context, query -> answer", max_depth=2, max_iters=job["max_iters"], max_llm_calls=job["max_llm_calls"],
              max_concurrency=job["concurrency"], max_live_sandboxes=job["concurrency"],
              sandbox_factory=counting_factory)
    began = time.perf_counter()
    with dspy.context(lm=lm):
        prediction = rlm(context=job["context"], query=job["query"])
    seconds = time.perf_counter() - began
    return {"call_s": seconds, "answer": prediction.answer, "sandboxes_built": len(built),
            "sandbox_types": sorted(set(built))}


def run_rlms(job: dict) -> dict:
    """`rlms`' RLM at `max_depth=2` on its default local environment (code `exec`'d in this process)."""
    from rlm import RLM

    rlm = RLM(backend="openai", backend_kwargs={"model_name": "bench", "base_url": job["api_base"], "api_key": "x"},
              environment="local", max_depth=2, max_iterations=job["max_iters"],
              max_concurrent_subcalls=job["concurrency"])
    began = time.perf_counter()
    completion = rlm.completion(job["context"], root_prompt=job["query"])
    seconds = time.perf_counter() - began
    return {"call_s": seconds, "answer": completion.response, "sandboxes_built": 0, "sandbox_types": []}


def run_recursive_llm(job: dict) -> dict:
    """`recursive-llm`'s RLM at `max_depth=2` (a child RLM per `rlm_query`; RestrictedPython in a worker process)."""
    from rlm import RLM

    rlm = RLM(model="openai/bench", api_base=job["api_base"], api_key="x", max_depth=2,
              max_iterations=job["max_iters"], max_concurrent_subcalls=job["concurrency"])
    began = time.perf_counter()
    answer = rlm.complete(job["query"], job["context"])
    seconds = time.perf_counter() - began
    return {"call_s": seconds, "answer": answer, "sandboxes_built": 0, "sandbox_types": []}


RUNNERS: dict[str, Callable[[dict], dict]] = {"dspy-rlm": run_dspy_rlm, "rlms": run_rlms,
                                              "recursive-llm": run_recursive_llm}


def peak_rss_mb() -> float | None:
    """VmHWM of this process in MiB (None where /proc is unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: list[str]) -> int:
    entered = time.time()
    # Run by path, this folder is sys.path[0]; its modules (report, memory, ...) must not shadow libraries.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    job = json.loads(argv[0])
    try:
        imported = time.perf_counter()
        result = RUNNERS[job["framework"]](job)
        result["import_and_call_s"] = time.perf_counter() - imported
        result["spawn_to_worker_s"] = entered - job["spawn_wall"]
        result["worker_peak_mb"] = peak_rss_mb()
    except Exception as exc:  # reported, not raised: the runner shows it beside the other measurements
        result = {"error": f"{type(exc).__name__}: {str(exc)[:800]}"}
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
