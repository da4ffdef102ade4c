"""`dspy-rlm optimize`: the command-line face of `dspy_rlm.optimizers.optimize`.

Only argparse is imported here, so building the parser stays cheap; the
optimizers, DSPy and MLflow load when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

OPTIMIZER_CHOICES = ("bootstrap", "mipro", "gepa", "simba", "stabilize")


MIN_CONTEXT, MAX_CONTEXT = 2**10, 2**23  # the task families' range (programs/families/base.py)


def _size(text: str) -> tuple[str, int]:
    name, _, value = text.partition("=")
    if name not in ("train", "dev", "test", "context") or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected train=N, dev=N, test=N or context=CHARS, got {text!r}")
    if name == "context" and not MIN_CONTEXT <= int(value) <= MAX_CONTEXT:
        raise argparse.ArgumentTypeError(f"context must be from {MIN_CONTEXT} (2^10) to {MAX_CONTEXT} (2^23) "
                                         f"characters, got {value}")
    return name, int(value)


def _setting(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `optimize` subcommand to the `dspy-rlm` parser."""
    parser = commands.add_parser(
        "optimize", help="compile an RLM program on a task family with a DSPy optimizer, tracked in MLflow",
        description="Compile an RLM program on a family's train split, evaluate baseline and compiled on its "
                    "test split, save the compiled program as JSON and record everything in one MLflow run.")
    parser.add_argument("--program", required=True, metavar="FAMILY",
                        help="task family: niah, oolong, pairs, multihop, codeqa")
    parser.add_argument("--optimizer", required=True, metavar="NAME",
                        help=f"one of: {', '.join(OPTIMIZER_CHOICES)}")
    parser.add_argument("--model", default="sim", help="root model: 'sim' (simulated) or a LiteLLM name (default sim)")
    parser.add_argument("--sub-model", help="sub-query model (default: the root model)")
    parser.add_argument("--reflection-model", help="GEPA's reflection model: 'sim' or a LiteLLM name (required for gepa)")
    parser.add_argument("--prompt-model", help="MIPROv2/SIMBA proposal model (default: sim with the simulated model)")
    parser.add_argument("--api-base", help="endpoint of an OpenAI-compatible server for the LiteLLM models "
                        "(keys come from the environment, e.g. OPENAI_API_KEY)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store ('' to disable)")
    parser.add_argument("--experiment", default="dspy-rlm-optimize", help="MLflow experiment name")
    parser.add_argument("--out", default="optimized", help="folder for the compiled program's JSON state "
                        "(FAMILY-OPTIMIZER.json, numbered -2, -3, ... when taken: earlier runs are never overwritten)")
    parser.add_argument("--output", metavar="FILE", help="save the compiled program to FILE instead")
    parser.add_argument("--force", action="store_true", help="overwrite --output (or the default name) if it exists")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and optimizers")
    parser.add_argument("--threads", type=int, default=2, help="evaluation threads")
    parser.add_argument("--size", type=_size, action="append", default=[], metavar="SPLIT=N",
                        help="split sizes and context size, e.g. --size train=8 --size context=16384")
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="NAME=VALUE",
                        help="override an optimizer setting, e.g. --set max_metric_calls=120")
    parser.add_argument("--log-model", action="store_true", help="also log the compiled program as a pyfunc model")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--verbose", action="store_true",
                        help="show the libraries' own output too (DSPy and GEPA logs, progress bars, MLflow messages)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the command; bad arguments end with a one-line error and exit status 2."""
    from dspy_rlm.errors import LMFailure
    from dspy_rlm.optimizers.compile import check_arguments

    try:
        check_arguments(args.program, args.optimizer, args.reflection_model, dict(args.set), dict(args.size))
        if args.output and not args.force and Path(args.output).exists():
            raise ValueError(f"{args.output} already exists; pass --force to overwrite it, or choose another --output")
        # With --json, stdout carries only the JSON: optimizers' own prints go to stderr.
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            result = _optimize(args)
    except ValueError as error:  # bad arguments, found before anything ran
        print(f"dspy-rlm optimize: error: {error}", file=sys.stderr)
        return 2
    except LMFailure as error:  # a model that cannot be called: no API key, an unknown name, no server
        print(f"dspy-rlm optimize: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        _print_result(result)
    return 0


def _optimize(args: argparse.Namespace) -> Any:
    from dspy_rlm.optimizers.compile import optimize

    return optimize(
        args.program, args.optimizer, args.model, sub_model=args.sub_model, reflection_model=args.reflection_model,
        prompt_model=args.prompt_model, tracking_uri=args.tracking_uri or None, experiment=args.experiment,
        output_dir=args.out, output=args.output, force=args.force, seed=args.seed, num_threads=args.threads, sizes=dict(args.size),
        overrides=dict(args.set), progress=not args.no_progress, log_model=args.log_model,
        lm_kwargs={"api_base": args.api_base} if args.api_base else None,
    )


def _print_result(result: Any) -> None:
    from dspy_rlm.observability.report import print_figures

    kind = "simulated model: these scores measure the pipeline, not a model" if result.model.startswith("sim") \
        else result.model
    print_figures(f"dspy-rlm optimize {result.family} / {result.optimizer}", {
        "model": kind,
        "baseline test score (%)": result.baseline_score,
        "compiled test score (%)": result.compiled_score,
        "improvement (points)": result.improvement,
        "compiled program": result.state_path,
        "MLflow run": f"{result.run_id} in {result.tracking_uri}" if result.run_id else "tracking off",
        "usage": result.usage,
        "seconds": result.seconds,
    })
