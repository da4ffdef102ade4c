"""`dspy-rlm library list | show NAME | test | diff OLD NEW`: a code library, versioned by hand too.

A library is a folder (`lib/`) or the library saved inside a program's JSON state
(`optimized/niah-stabilize.json`); every subcommand takes either.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_LIBRARY = "lib"


def add_parser(commands: argparse._SubParsersAction) -> None:
    library = commands.add_parser("library", help="list, show, test or diff a code library (a folder of functions, "
                                                  "or the library inside a saved program)")
    actions = library.add_subparsers(dest="library_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="each function: signature, first docstring line, origin, tests")
    show = actions.add_parser("show", help="print one function's file and its recorded tests")
    show.add_argument("name", help="the function's name (its file is NAME.py)")
    test = actions.add_parser("test", help="run the recorded tests in the sandbox (exit 1 if any fails)")
    test.add_argument("names", nargs="*", help="only these functions (default: all)")
    for sub in (listing, show, test):
        sub.add_argument("--library", "-l", default=DEFAULT_LIBRARY,
                         help=f"the library folder or a saved program's JSON (default {DEFAULT_LIBRARY}/)")
    diff = actions.add_parser("diff", help="a unified diff of two libraries' files (exit 1 when they differ)")
    diff.add_argument("old", help="a library folder or a saved program's JSON")
    diff.add_argument("new", help="a library folder or a saved program's JSON")


def run(args: argparse.Namespace) -> int:
    from dspy_rlm.errors import LibraryError

    try:
        return _ACTIONS[args.library_command](args)
    except LibraryError as error:
        print(f"dspy-rlm library: error: {error}", file=sys.stderr)
        return 2


def load_library(where: str) -> Any:
    """The library in a folder, or in a saved program's JSON state (its `library` entry)."""
    from dspy_rlm.errors import LibraryError
    from dspy_rlm.library import CodeLibrary

    path = Path(where)
    if path.is_file() and path.suffix == ".json":
        state = json.loads(path.read_text())
        if "library" not in state:
            raise LibraryError(f"{path}: this saved program has no library; compile it with Stabilize "
                               "(dspy-rlm optimize --optimizer stabilize) or pass a library folder")
        return CodeLibrary.from_state(state["library"])
    return CodeLibrary(path)


def _list(args: argparse.Namespace) -> int:
    library = load_library(args.library)
    print(f"{args.library}: {len(library)} function(s), {library.content_hash}")
    for name in library.names:
        function = library.functions[name]
        origin = function.provenance
        where = f"harvested from {origin.program or 'a program'} ({origin.run})" if origin.harvested else "hand-written"
        role = "  [solver]" if name == "solve" else ""
        print(f"  {function.source.signature}{role}\n      {function.source.summary}\n"
              f"      {where}; {len(function.tests)} recorded test(s)")
    return 0


def _show(args: argparse.Namespace) -> int:
    library = load_library(args.library)
    if args.name not in library:
        print(f"dspy-rlm library: error: no function {args.name!r} in {args.library} (it has: "
              f"{', '.join(library.names) or 'none'})", file=sys.stderr)
        return 2
    files = library.files()
    print(files[f"{args.name}.py"], end="")
    tests = files.get(f"tests/{args.name}.json")
    print(f"\n# tests/{args.name}.json: {len(library.functions[args.name].tests)} recorded call(s)")
    if tests:
        print(tests, end="")
    return 0


def _test(args: argparse.Namespace) -> int:
    from dspy_rlm.library import run_tests

    library = load_library(args.library)
    unknown = sorted(set(args.names) - set(library.names))
    if unknown:
        print(f"dspy-rlm library: error: no function(s) {unknown} in {args.library}", file=sys.stderr)
        return 2
    outcomes = run_tests(library, names=args.names or None)
    for outcome in outcomes:
        print(outcome.line())
    failed = sum(not o.passed for o in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _diff(args: argparse.Namespace) -> int:
    old, new = load_library(args.old).files(), load_library(args.new).files()
    changed = False
    for relative in sorted(set(old) | set(new)):
        before, after = old.get(relative, ""), new.get(relative, "")
        if before == after:
            continue
        changed = True
        sys.stdout.writelines(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                                   f"a/{relative}" if relative in old else "/dev/null",
                                                   f"b/{relative}" if relative in new else "/dev/null"))
    return 1 if changed else 0


_ACTIONS = {"list": _list, "show": _show, "test": _test, "diff": _diff}
