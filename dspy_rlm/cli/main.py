"""The `dspy-rlm` command."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from dspy_rlm import settings


def _checked(convert: Callable[[str], float], expected: str, allowed: Callable[[float], bool],
             rule: str) -> Callable[[str], float]:
    """An argparse type: `convert`, then check the value, with messages that say what is wanted."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not allowed(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
        return value
    return parse


_context_size = _checked(lambda text: int(float(text)), "a whole number", lambda v: 2**10 <= v <= 2**23,
                         "from 1024 (2^10) to 8388608 (2^23) characters")
_fraction = _checked(float, "a number from 0 to 1", lambda v: 0.0 <= v <= 1.0, "from 0 to 1")
_seconds = _checked(float, "a number of seconds", lambda v: v >= 0, "0 or more seconds")
_megabytes = _checked(float, "a number of megabytes", lambda v: v > 0, "more than 0 MB")


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="run one RLM call end to end on a task family "
                                             "(simulated model by default; local MLflow store)")
    demo.add_argument("--family", default="oolong", help="niah, oolong, pairs, multihop, codeqa or logs (default oolong)")
    demo.add_argument("--size", type=_context_size, default=4_000_000, help="context size in characters")
    demo.add_argument("--seed", type=int, default=0, help="seed of the generated task and the simulated model")
    demo.add_argument("--model", help="a LiteLLM model name (keys from the environment) instead of the simulated model")
    demo.add_argument("--sub-model", help="LiteLLM name of the sub-model (default: --model)")
    demo.add_argument("--latency", type=_seconds, default=0.0, help="simulated seconds per model call")
    demo.add_argument("--no-hint", dest="hint", action="store_false",
                      help="run the bare prompt, without the family's one-line advice in the instructions")
    demo.add_argument("--max-depth", type=int, choices=[1, 2, 3], default=1,
                      help="2 or 3: the code may start child runs with rlm_query (try --family logs)")
    demo.add_argument("--tracking-uri", default=settings.TRACKING_URI, help="MLflow store ('' to disable)")
    demo.add_argument("--verbose", action="store_true", help="show the libraries' own log messages too")
    ui = commands.add_parser("ui", help="open the MLflow dashboard on a store (works offline)")
    ui.add_argument("--tracking-uri", default=settings.TRACKING_URI, help="MLflow store (default sqlite:///mlflow.db)")
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")


def _add_serve_sim(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve-sim", help="serve the simulated model as an OpenAI-compatible endpoint on 127.0.0.1")
    serve.add_argument("--family", default="oolong", help="the task family whose world the model knows (default oolong)")
    serve.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    serve.add_argument("--seed", type=int, default=0, help="default seed (a request's 'seed' overrides it)")
    serve.add_argument("--latency", type=_seconds, default=0.0, help="seconds per completion")
    serve.add_argument("--error-rate", type=_fraction, default=0.02, help="chance that a sub-model reply holds a mistake")
    serve.add_argument("--faults", type=lambda text: [None if f in ("", "none") else f for f in text.split(",")],
                       default=[], help="fault schedule, one per request in order: 429,500,slow,malformed,empty,none")
    serve.add_argument("--fault-rate", type=_fraction, default=0.0, help="chance of a random fault per request")
    serve.add_argument("--retry-after", type=_seconds, default=1.0, help="Retry-After seconds of a 429")
    serve.add_argument("--slow-seconds", type=_seconds, default=2.0, help="delay of a 'slow' fault")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dspy-rlm", description="Recursive Language Models on DSPy and pyeryx.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_demo(commands)
    _add_serve_sim(commands)
    bench = commands.add_parser("bench", help="benchmark dspy.RLM (Deno/Pyodide, EryxInterpreter), dspy_rlm.RLM and an exec floor")
    bench.add_argument("--suite", choices=["compare", "core", "depth", "batch", "modules"], default="compare",
                       help="compare: the four setups side by side (default); core: dspy_rlm.RLM's own targets; "
                            "depth: max_depth=2 beside rlms 0.1.3 (issue 12); "
                            "batch: rows/s in process vs Spark local[1] and local[2] (issue 14); "
                            "modules: dspy.Flex, CodeAct and ProgramOfThought on Deno vs eryx (issue 17)")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (about 2 minutes)")
    bench.add_argument("--out", default="bench_results", help="folder for the JSON, markdown and PNG results")
    bench.add_argument("--tracking-uri", default=settings.TRACKING_URI, help="MLflow store ('' to disable)")
    bench.add_argument("--only", type=lambda text: [w for w in text.split(",") if w],
                       help="comma-separated workloads: start,iterations,context,batched,threads")
    from dspy_rlm.optimizers.cli import add_parser as add_optimize  # argparse only; the optimizers load on use

    add_optimize(commands)
    from dspy_rlm.cli.show import add_parser as add_show

    add_show(commands)
    from dspy_rlm.cli.library import add_parser as add_library

    add_library(commands)
    from dspy_rlm.cli.ask import add_parser as add_ask

    add_ask(commands, _megabytes)
    from dspy_rlm.cli.batch import add_parser as add_batch

    add_batch(commands)
    soak = commands.add_parser("soak", help="many RLM calls in a row and on threads with the simulated model; "
                                            "checks answers and leaks (threads, files, folders, RSS)")
    soak.add_argument("--calls", type=int, default=500, help="sequential calls (default 500)")
    soak.add_argument("--threads", type=int, default=8, help="threads of the concurrent phase (default 8)")
    soak.add_argument("--per-thread", type=int, default=100, help="calls per thread (default 100)")
    soak.add_argument("--quick", action="store_true", help="60 sequential calls and 4 threads x 15")
    soak.add_argument("--size", type=_context_size, default=2**13, help="context size in characters (default 8192)")
    soak.add_argument("--keep-history", action="store_true",
                      help="keep DSPy's call history and trace on (DSPy caps each at 10,000 entries)")
    soak.add_argument("--isolate-process", action="store_true",
                      help="run every sandbox in a worker process (RLM(isolate_process=True))")
    soak.add_argument("--out", default="bench_results", help="folder for soak.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `dspy-rlm` command; `argv=None` is the real command line (Ctrl-C then ends the process)."""
    from dspy_rlm.cli.console import interrupt_cleanly, quiet_libraries

    args = build_parser().parse_args(argv)
    with quiet_libraries(getattr(args, "verbose", False)), interrupt_cleanly(args.command, argv is None) as interrupt:
        try:
            return _run_command(args)
        except KeyboardInterrupt:
            return interrupt.finish()


def _run_command(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from dspy_rlm.cli.demo import run_demo
        from dspy_rlm.errors import LMFailure
        from dspy_rlm.observability.report import print_figures

        try:
            figures = run_demo(args.family, args.size, args.seed, model=args.model, sub_model=args.sub_model,
                               max_depth=args.max_depth,
                               latency=args.latency, hint=args.hint, tracking_uri=args.tracking_uri or None)
        except ValueError as error:  # bad arguments found once the family and models are known
            print(f"dspy-rlm demo: error: {error}", file=sys.stderr)
            return 2
        except LMFailure as error:  # for example an unknown --model, or a missing API key
            print(f"dspy-rlm demo: error: {str(error).splitlines()[0]}", file=sys.stderr)
            return 1
        print_figures(f"dspy-rlm demo: {figures['model']}", figures)
    elif args.command == "serve-sim":
        import dspy_rlm.lms.simulated.files_world  # noqa: F401  (registers the "files" world of `dspy-rlm ask`)
        import dspy_rlm.programs.families  # noqa: F401  (registers the families' worlds with the simulated model)
        from dspy_rlm.lms.simulated.server import run_server

        try:
            run_server(args.family, port=args.port, seed=args.seed, latency=args.latency, error_rate=args.error_rate,
                       faults=args.faults, fault_rate=args.fault_rate, retry_after=args.retry_after,
                       slow_seconds=args.slow_seconds)
        except ValueError as error:
            print(f"dspy-rlm serve-sim: error: {error}", file=sys.stderr)
            return 2
    elif args.command == "bench":
        from dspy_rlm.cli.bench import run_bench

        if args.suite == "depth":
            from dspy_rlm.cli.bench.depth_run import run_depth_bench

            run_depth_bench(reps=1 if args.quick else 3, out=args.out)
            return 0
        if args.suite == "modules":
            from dspy_rlm.cli.bench.modules import run_modules_bench

            run_modules_bench(out=args.out, quick=args.quick)
            return 0
        if args.suite == "batch":
            from dspy_rlm.cli.bench.batch import run_batch_bench

            run_batch_bench(out=args.out, quick=args.quick)
            return 0
        run_bench(args.suite, quick=args.quick, out=args.out, tracking_uri=args.tracking_uri or None, only=args.only)
    elif args.command == "ask":
        from dspy_rlm.cli.ask import run as run_ask

        return run_ask(args)
    elif args.command == "batch":
        from dspy_rlm.cli.batch import run as run_batch

        return run_batch(args)
    elif args.command == "show":
        from dspy_rlm.cli.show import run as run_show

        return run_show(args)
    elif args.command == "library":
        from dspy_rlm.cli.library import run as run_library

        return run_library(args)
    elif args.command == "optimize":
        from dspy_rlm.optimizers.cli import run

        return run(args)
    elif args.command == "ui":
        from dspy_rlm.cli.ui import run_ui

        return run_ui(args.tracking_uri, port=args.port, host=args.host)
    elif args.command == "soak":
        from dspy_rlm.cli.soak import run_soak

        calls, threads, per_thread = (60, 4, 15) if args.quick else (args.calls, args.threads, args.per_thread)
        figures = run_soak(calls, threads, per_thread, size=args.size, keep_history=args.keep_history,
                           isolate_process=args.isolate_process, out=args.out)
        return 0 if figures["passed"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
