"""The main job: one RLM call end to end over a multi-MB needle-in-a-haystack context.

The root and sub models are `ScriptedLM`s: the root writes a fixed three-step
strategy (peek, regex + batched sub-queries, FINAL); the sub-model answers
from the chunk it is given. Numbers printed here measure the pipeline, not a
real model's ability.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import dspy

from dspy_rlm import RLM, ScriptedLM, ScriptedRequest
from programs.niah import make_needle_task

PEEK = "print(len(context))\nprint(context[:300])\nprint(query)"
SEARCH = """import re
hits = [m.start() for m in re.finditer(r"magic number for", context)]
print(len(hits), "candidate sentences")
chunks = [context[max(0, h - 300): h + 300] for h in hits]
answers = llm_query_batched([f"{query}\\nReply with the number only, or NONE.\\n---\\n{c}" for c in chunks])
found = [a.strip() for a in answers if a.strip() != "NONE"]
print(found)"""


def scripted_root(request: ScriptedRequest) -> dict[str, str]:
    """A fixed strategy: peek, then regex + batched sub-queries, then FINAL."""
    steps_done = (request.field("repl_history") or "").count("=== Step ")
    plan = [("Look at the data first.", PEEK),
            ("Find the candidate sentences and ask the sub-model about each.", SEARCH),
            ("One candidate matches the key: submit it.", "FINAL(found[0])")]
    reasoning, code = plan[min(steps_done, len(plan) - 1)]
    return {"reasoning": reasoning, "code": f"```python\n{code}\n```"}


def scripted_reader(request: ScriptedRequest) -> dict[str, str]:
    """Answer a sub-query from the text in its prompt, as a reader would."""
    prompt = request.field("prompt") or ""
    key = re.search(r"magic number for ([\w-]+)\?", prompt)
    value = key and re.search(rf"magic number for {re.escape(key.group(1))} is (\d+)", prompt.split("---", 1)[-1])
    return {"response": value.group(1) if value else "NONE"}


def run_demo(size: int = 4_000_000, seed: int = 0, tracking_uri: str | None = "sqlite:///mlflow.db") -> dict[str, Any]:
    """Run the main job and return its figures (labelled as scripted-model figures).

    With a tracking URI, the call runs inside an MLflow run with DSPy autologging,
    so the run holds the params and figures and its trace holds the span tree.
    """
    task = make_needle_task(size, seed)
    rlm = RLM("context, query -> answer", max_iters=6, sub_lm=ScriptedLM(scripted_reader, model="scripted/reader"))
    with _mlflow_run(tracking_uri, {"family": "niah", "context_chars": len(task.context), "seed": seed,
                                    "root_model": "scripted/root", "sub_model": "scripted/reader"}) as log_metrics:
        started = time.perf_counter()
        with dspy.context(lm=ScriptedLM(scripted_root, model="scripted/root")):
            prediction = rlm(context=task.context, query=task.query)
        seconds = time.perf_counter() - started
        figures = {
            "model": "scripted (not a real language model)",
            "context_chars": len(task.context),
            "question": task.query,
            "answer": prediction.answer,
            "expected": task.answer,
            "score": float(prediction.answer.strip() == task.answer),
            "iterations": len(prediction.trajectory),
            "sub_queries": prediction.usage["sub_calls"],
            "total_tokens": prediction.usage["total_tokens"],
            "seconds": round(seconds, 3),
        }
        log_metrics({k: figures[k] for k in ("score", "iterations", "sub_queries", "total_tokens", "seconds")})
    return figures


@contextlib.contextmanager
def _mlflow_run(tracking_uri: str | None, params: dict[str, Any]):
    if not tracking_uri:
        yield lambda metrics: None
        return
    import mlflow

    from dspy_rlm.tracing import truncate_span_inputs

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("dspy-rlm-demo")
    mlflow.dspy.autolog(silent=True)
    mlflow.tracing.configure(span_processors=[truncate_span_inputs])
    with mlflow.start_run(run_name="demo-niah") as run:
        mlflow.set_tags({"dspy_rlm.model_kind": "scripted (not a real language model)"})
        mlflow.log_params(params)
        yield mlflow.log_metrics
        print(f"MLflow run {run.info.run_id} in {tracking_uri} (open it with: mlflow ui --backend-store-uri {tracking_uri})")
