"""`dspy-rlm show <trace-id>`: print the steps of the RLM call an MLflow trace recorded."""

from __future__ import annotations

import argparse
import sys

from dspy_rlm import settings


def add_parser(commands: argparse._SubParsersAction) -> None:
    show = commands.add_parser("show", help="print the steps (code, outputs, sub-queries, times) and usage "
                                            "of the RLM call in an MLflow trace")
    show.add_argument("trace_id", help="the trace id (tr-...), as `mlflow ui` or mlflow.search_traces shows it")
    show.add_argument("--tracking-uri", default=settings.TRACKING_URI, help="the MLflow store holding the trace")
    show.add_argument("--max-output-chars", type=int, default=settings.MAX_OUTPUT_CHARS,
                      help="characters of each step's output shown (cut in the middle)")
    show.add_argument("--plain", action="store_true", help="each step as the REPL-history block the model read")


def run(args: argparse.Namespace) -> int:
    import mlflow

    from dspy_rlm.observability.viewer import inspect_trajectory

    mlflow.set_tracking_uri(args.tracking_uri)
    try:
        inspect_trajectory(args.trace_id, max_output_chars=args.max_output_chars, plain=args.plain)
    except ValueError as error:
        print(f"dspy-rlm show: error: {error}", file=sys.stderr)
        return 2
    return 0
