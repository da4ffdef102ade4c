"""The `dspy-rlm` command."""

from __future__ import annotations

import argparse
import os
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1024:
        raise argparse.ArgumentTypeError(f"must be at least 1024 characters, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dspy-rlm", description="Recursive Language Models on DSPy and pyeryx.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run one RLM call end to end (scripted model, local MLflow store)")
    demo.add_argument("--size", type=_positive_int, default=4_000_000, help="context size in characters")
    demo.add_argument("--seed", type=int, default=0, help="seed of the generated task")
    demo.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store ('' to disable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # litellm otherwise tries to download its cost map at import time, which hangs offline.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if args.command == "demo":
        from programs.demo import run_demo
        from dspy_rlm.report import print_figures

        print_figures("dspy-rlm demo", run_demo(args.size, args.seed, args.tracking_uri or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
