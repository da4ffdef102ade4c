"""`CodeLibrary`: a folder of plain Python files, one documented function per file.

    lib/
      find_needle.py        a harvested or hand-written function (+ private helpers)
      pick.py
      solve.py              optional: solve(**inputs) -> dict, the library's solver
      tests/find_needle.json  its recorded calls (regression tests)

An `RLM(..., library=...)` loads `source()` into every sandbox session of a call, once,
and lists `index_text()` in the code-generation prompt. Library code runs only in the
sandbox. Files are normalised when written (`code.normalise`), so a regenerated library
is byte-identical and `git diff` shows only real changes.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from dspy_rlm.errors import LibraryError
from dspy_rlm.fileio import replacing
from dspy_rlm.library.code import FunctionSource, normalise, parse, read_function
from dspy_rlm.library.provenance import Provenance, parse_header
from dspy_rlm.library.recording import ORIGINAL_PREFIX, RECORD_FUNCTION, CallRecorder, RecordedCall, read_tests, write_tests, wrapper_code
from dspy_rlm.sandbox import make_awaitable

SOLVER = "solve"
TESTS_FOLDER = "tests"
INDEX_HEADING = "Library functions already defined in the sandbox (call them; don't redefine):"
INDEX_CHARS = 4_000
_INDEX_LINE = re.compile(r"^- (\w+)\(", re.MULTILINE)
_FILE = re.compile(r"^[A-Za-z_]\w*\.py$")


@dataclass(frozen=True)
class LibraryFunction:
    """One file of the library: its function, where it came from, and its recorded tests."""

    source: FunctionSource
    provenance: Provenance = Provenance()
    tests: tuple[RecordedCall, ...] = ()

    @property
    def name(self) -> str:
        return self.source.name

    def file_text(self) -> str:
        """The file as written: the provenance header, then the normalised code."""
        return self.provenance.header() + self.source.code


@dataclass(frozen=True, repr=False)
class CodeLibrary:
    """Functions that accumulate across runs; see the module docstring.

    `CodeLibrary("lib/")` reads a folder; `CodeLibrary.from_files({...})` a mapping of
    relative paths to texts (a saved program's state). A file that breaks the rules (two
    public functions, no docstring, a syntax error) is a `LibraryError` naming it and the fix."""

    functions: Mapping[str, LibraryFunction] = field(default_factory=dict)
    path: Path | None = None
    recorder: CallRecorder | None = field(default=None, compare=False)

    def __init__(self, path: str | os.PathLike | None = None, *, functions: Iterable[LibraryFunction] = (),
                 recorder: CallRecorder | None = None):
        loaded = list(functions)
        if path is not None:
            folder = Path(path)
            if not folder.is_dir():
                raise LibraryError(f"{folder}: no such library folder; create it (mkdir) or pass the folder that "
                                   "holds the library's .py files")
            loaded = list(_read_files(_folder_files(folder), str(folder))) + loaded
        object.__setattr__(self, "functions", _checked(loaded, str(path) if path is not None else "<library>"))
        object.__setattr__(self, "path", Path(path) if path is not None else None)
        object.__setattr__(self, "recorder", recorder)

    @classmethod
    def from_files(cls, files: Mapping[str, str], where: str = "<library>") -> CodeLibrary:
        """A library from relative paths and texts (as `files` gives them)."""
        return cls(functions=_read_files(files, where))

    @classmethod
    def coerce(cls, library: CodeLibrary | str | os.PathLike | None) -> CodeLibrary | None:
        """A library, or a folder's path made one (how `RLM(library=...)` takes either)."""
        if library is None or isinstance(library, CodeLibrary):
            return library
        if isinstance(library, (str, os.PathLike)):
            return cls(library)
        raise TypeError(f"library must be a CodeLibrary or a folder path, got {type(library).__name__}: "
                        "write library=CodeLibrary('lib/') or library='lib/'")

    def __repr__(self) -> str:
        where = f"{str(self.path)!r}, " if self.path is not None else ""
        return f"CodeLibrary({where}functions={self.names})"

    # -- what it holds -----------------------------------------------------

    @property
    def names(self) -> list[str]:
        return sorted(self.functions)

    @property
    def solver(self) -> LibraryFunction | None:
        return self.functions.get(SOLVER)

    def __len__(self) -> int:
        return len(self.functions)

    def __contains__(self, name: object) -> bool:
        return name in self.functions

    def files(self) -> dict[str, str]:
        """Relative path -> text of every file, sorted: what `write` puts on disk and a saved state holds."""
        out = {}
        for name in self.names:
            function = self.functions[name]
            out[f"{name}.py"] = function.file_text()
            if function.tests:
                out[f"{TESTS_FOLDER}/{name}.json"] = write_tests(list(function.tests))
        return dict(sorted(out.items()))

    @property
    def content_hash(self) -> str:
        """sha256 over every file's path and text (what a saved program checks on load)."""
        return files_hash(self.files())

    # -- in the sandbox and the prompt -------------------------------------

    def index_text(self, max_chars: int = INDEX_CHARS) -> str:
        """One line per function, `- signature: first docstring line`, at most `max_chars` in all."""
        lines = [f"- {f.source.signature}: {f.source.summary}" for f in self._in_load_order()]
        kept, used = [], 0
        for number, line in enumerate(lines):
            last = number == len(lines) - 1
            more = f"- ... and {len(lines) - number} more (print(name.__doc__) shows a function's docstring)"
            if used + len(line) + (0 if last else len(more) + 1) > max_chars:
                kept.append(more)
                break
            kept.append(line)
            used += len(line) + 1
        return "\n".join(kept)

    def prompt_section(self, max_chars: int = INDEX_CHARS) -> str:
        """The heading and the index, as `variables_info` shows them ("" for an empty library)."""
        return f"{INDEX_HEADING}\n{self.index_text(max_chars)}" if self.functions else ""

    def source(self, async_names: Iterable[str] = ()) -> str:
        """The code that defines every function in a sandbox session, made awaitable for `async_names`
        (the session's host functions); while recording, each function is wrapped by the recorder."""
        names = set(async_names)
        if self.recorder is None:
            code = "\n\n".join(f.source.code for f in self._in_load_order())
        else:  # each def renamed, its name bound to an async recording wrapper that callers await
            names |= set(self.functions) | {RECORD_FUNCTION}
            code = "\n\n".join(_renamed(f.source.code, f.name, ORIGINAL_PREFIX + f.name)
                               for f in self._in_load_order())
            code += "\n\n" + wrapper_code(self.names)
        return make_awaitable(code, names) if code else ""

    def host_functions(self) -> dict[str, Callable[..., Any]]:
        """Host functions the library's code calls (the recorder, while recording)."""
        return {RECORD_FUNCTION: self.recorder} if self.recorder is not None else {}

    def recording(self, recorder: CallRecorder) -> CodeLibrary:
        """This library, its calls recorded by `recorder` (see `recording.py`)."""
        return CodeLibrary(functions=self.functions.values(), recorder=recorder)

    # -- building and writing ----------------------------------------------

    def adding(self, *functions: LibraryFunction) -> CodeLibrary:
        """This library with `functions` added (a function of the same name is replaced)."""
        kept = {name: f for name, f in self.functions.items() if name not in {g.name for g in functions}}
        return CodeLibrary(functions=[*kept.values(), *functions])

    def without(self, *names: str) -> CodeLibrary:
        return CodeLibrary(functions=[f for name, f in self.functions.items() if name not in names])

    def with_tests(self, tests: Mapping[str, list[RecordedCall]]) -> CodeLibrary:
        """This library with the recorded `tests` of the functions they name (others keep theirs)."""
        return CodeLibrary(functions=[replace(f, tests=tuple(tests.get(name, f.tests)))
                                      for name, f in self.functions.items()])

    def write(self, path: str | os.PathLike) -> Path:
        """Write the library to a folder: every file whole, stale library files removed."""
        folder = Path(path)
        files = self.files()
        for stale in set(_folder_files(folder)) - set(files) if folder.is_dir() else ():
            (folder / stale).unlink()
        for relative, text in files.items():
            target = folder / relative
            if target.exists() and target.read_text() == text:
                continue
            with replacing(target) as temporary:
                temporary.write_text(text)
        return folder

    def to_state(self) -> dict[str, Any]:
        """What a saved program holds: the files and their content hash."""
        return {"files": self.files(), "hash": self.content_hash}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> CodeLibrary:
        """The library of a saved state, refusing one whose files do not match its hash."""
        if not isinstance(state, Mapping) or not isinstance(state.get("files"), Mapping):
            raise LibraryError("the saved state's library has no files; save the program again")
        computed = files_hash(state["files"])  # over the texts as saved, before they are read
        if state.get("hash") != computed:
            raise LibraryError(f"the saved library's files do not match its hash ({state.get('hash')} saved, "
                               f"{computed} computed): the file was edited by hand; save it again")
        return cls.from_files(state["files"], "<saved library>")

    def _in_load_order(self) -> list[LibraryFunction]:
        return [self.functions[name] for name in self.names if name != SOLVER] + ([self.solver] if self.solver else [])


def _renamed(code: str, name: str, new_name: str) -> str:
    """`code` with its top-level `def name` renamed (calls inside keep the old name: the wrapper's)."""
    tree = parse(code, name)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            node.name = new_name
    return ast.unparse(tree)


def files_hash(files: Mapping[str, str]) -> str:
    """sha256 over relative paths and texts."""
    return "sha256:" + hashlib.sha256(json.dumps(dict(files), sort_keys=True).encode()).hexdigest()


def parse_index(text: str) -> list[str]:
    """The function names a `prompt_section` in `text` lists (how a reader of the prompt finds them)."""
    start = text.find(INDEX_HEADING)
    return [] if start < 0 else _INDEX_LINE.findall(text[start:])


def _folder_files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    files = {p.name: p.read_text() for p in sorted(folder.glob("*.py")) if not p.name.startswith("__")}
    files.update({f"{TESTS_FOLDER}/{p.name}": p.read_text() for p in sorted((folder / TESTS_FOLDER).glob("*.json"))})
    return files


def _read_files(files: Mapping[str, str], where: str) -> list[LibraryFunction]:
    tests = {relative: text for relative, text in files.items() if relative.startswith(f"{TESTS_FOLDER}/")}
    functions = {}
    for relative, text in sorted(files.items()):
        if relative in tests:
            continue
        if not _FILE.match(relative):
            raise LibraryError(f"{where}/{relative}: library files are top-level NAME.py files (and tests/NAME.json)")
        provenance, code = parse_header(text, f"{where}/{relative}")
        source = read_function(code, f"{where}/{relative}", expected=relative.removesuffix(".py"))
        functions[source.name] = LibraryFunction(source, provenance)
    for relative, text in tests.items():
        name = relative.removeprefix(f"{TESTS_FOLDER}/").removesuffix(".json")
        if name not in functions:
            raise LibraryError(f"{where}/{relative}: tests of {name!r}, but the library has no {name}.py; "
                               "delete the tests file or add the function")
        functions[name] = replace(functions[name], tests=tuple(read_tests(text, name, f"{where}/{relative}")))
    return list(functions.values())


def _checked(functions: list[LibraryFunction], where: str) -> dict[str, LibraryFunction]:
    """By name; two files defining the same private helper would overwrite each other in the sandbox."""
    by_name: dict[str, LibraryFunction] = {}
    owners: dict[str, str] = {}
    for function in functions:
        by_name[function.name] = function
    for name in sorted(by_name):
        for helper in _private_names(by_name[name].source.code):
            if helper in owners and owners[helper] != name:
                raise LibraryError(f"{where}/{name}.py and {where}/{owners[helper]}.py both define {helper}; the "
                                   "sandbox loads them "
                                   "into one namespace: rename one of them")
            owners[helper] = name
    return dict(sorted(by_name.items()))


def _private_names(code: str) -> list[str]:
    names = []
    for node in parse(code, "<library>").body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_"):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def library_function(code: str, provenance: Provenance = Provenance(), where: str = "<harvest>") -> LibraryFunction:
    """A library function from code (normalised and checked as any file is)."""
    return LibraryFunction(read_function(normalise(code, where), where), provenance)
