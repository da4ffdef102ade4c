"""The package's architecture, checked from its source (parsed with `ast`, never imported).

Every module of `dspy_rlm/`, of `programs/` (installed as `dspy_rlm.programs`) and of
`optimizers/` (installed as `dspy_rlm.optimizers`) is read as a node of one import graph.
An import counts wherever it is written: at the top, inside a function, under
`if TYPE_CHECKING:`. `from pkg import name` imports the module `pkg.name` when there is
one, and otherwise `pkg`; importing a package imports its `__init__`.

The rules:
1. no two modules import each other, and the import graph has no cycle at all;
2. no module imports a layer above its own (the table `LAYERS` below);
3. the sandbox, ingest and library layers know nothing of DSPy, and only the sandbox layer touches eryx;
4. within `dspy_rlm/` proper, only the cli imports `dspy_rlm.programs` or `dspy_rlm.optimizers`;
5. no module assigns to an attribute of a module of this package it imported (no monkeypatching);
6. no source file is over `MAX_LINES` lines;
7. every package folder is listed in pyproject.toml, so it gets installed.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The layers, from the bottom. A module belongs to the layer of the longest prefix naming it
# (`dspy_rlm.observability.tracing` before `dspy_rlm.observability`), and may import its own layer
# and those below, never one above. The facade is the package's `__init__` alone.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("dspy_rlm.errors", "dspy_rlm.settings", "dspy_rlm.fileio"),
    ("dspy_rlm.sandbox",),
    ("dspy_rlm.ingest",),  # files and folders as inputs (no DSPy)
    ("dspy_rlm.library",),  # the code library: harvested, tested, versioned functions (no DSPy)
    ("dspy_rlm.observability.tracing",),  # a leaf the module layer uses to open spans
    ("dspy_rlm.core",),
    ("dspy_rlm.lms",),
    ("dspy_rlm.observability",),  # tracking, progress
    ("dspy_rlm.serving",),
    ("dspy_rlm.integrations",),  # dspy-rlm inside other tools (the llm CLI plugin)
    ("dspy_rlm.programs",),
    ("dspy_rlm.optimizers",),
    ("dspy_rlm.cli",),
    ("dspy_rlm",),  # the facade
)
FACADE = "dspy_rlm"
# Built on the library like any user's code, these may use the public facade (`from dspy_rlm import RLM`).
FACADE_USERS = ("dspy_rlm.programs", "dspy_rlm.optimizers", "dspy_rlm.cli")
SANDBOX = "dspy_rlm.sandbox"
INGEST = "dspy_rlm.ingest"
LIBRARY = "dspy_rlm.library"
SANDBOX_MAY_IMPORT = (SANDBOX, "dspy_rlm.errors", "dspy_rlm.settings", "dspy_rlm.fileio")
APPLICATIONS = ("dspy_rlm.programs", "dspy_rlm.optimizers")  # only the cli, of dspy_rlm/ proper, uses them
CLI = "dspy_rlm.cli"
MAX_LINES = 400


@dataclass(frozen=True)
class Module:
    name: str  # dotted, as installed: programs/aggregate.py is dspy_rlm.programs.aggregate
    path: Path
    is_package: bool
    tree: ast.Module
    lines: int

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT))


@dataclass(frozen=True)
class Import:
    source: Module
    target: str  # the dotted name imported (any library, not only this package)
    line: int

    @property
    def where(self) -> str:
        return f"{self.source.where}:{self.line}"


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# ---- reading the source ----

@cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@cache
def source_roots() -> dict[str, Path]:
    """Installed package name -> its folder in the repository (pyproject's package-dir, plus dspy_rlm itself)."""
    package_dir = pyproject()["tool"]["setuptools"].get("package-dir", {})
    return {FACADE: ROOT / FACADE, **{name: ROOT / folder for name, folder in package_dir.items()}}


def source_files() -> list[Path]:
    return sorted(p for folder in source_roots().values() for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def installed_name(path: Path) -> str:
    """The dotted name a file or folder is installed as."""
    for package, folder in source_roots().items():
        if path == folder or folder in path.parents:
            parts = path.relative_to(folder).parts
            parts = (*parts[:-1], parts[-1].removesuffix(".py")) if parts else ()
            return ".".join((package, *(p for p in parts if p != "__init__")))
    raise AssertionError(f"{path} lies outside every source root")  # pragma: no cover


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in source_files():
        text = path.read_text()
        name = installed_name(path)
        found[name] = Module(name, path, path.name == "__init__.py", ast.parse(text, str(path)), len(text.splitlines()))
    return found


def _from_base(module: Module, node: ast.ImportFrom) -> str:
    """The module a `from ... import` reads from, with relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: Module) -> list[Import]:
    """Everything `module` imports, anywhere in it; a `from` import of a submodule names the submodule."""
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(module, node)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append(Import(module, target if target in modules() else base, node.lineno))
    return found


def own_module(target: str) -> str | None:
    """The module of this package that importing `target` runs, or None for other libraries."""
    while target and target not in modules():
        target = target.rpartition(".")[0]
    return target or None


@cache
def package_imports() -> dict[str, tuple[Import, ...]]:
    """Module -> its imports of this package's modules (one per target: the first line that imports it)."""
    graph = {}
    for name, module in modules().items():
        first: dict[str, Import] = {}
        for found in imports_of(module):
            target = own_module(found.target)
            if target and target != name:  # a module naming itself imports nothing new
                first.setdefault(target, Import(module, target, found.line))
        graph[name] = tuple(sorted(first.values(), key=lambda i: i.target))
    return graph


def layer_of(name: str) -> int | None:
    """The index in LAYERS of the longest prefix naming `name` (the facade only by its exact name)."""
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix if prefix == FACADE else within(name, prefix)
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def layer_name(index: int) -> str:
    return " / ".join(LAYERS[index])


def check(rule: str, violations: list[str]) -> None:
    """Fail with the rule and one line per violation (pytest's own repeat of the list would only add noise)."""
    if violations:
        pytest.fail(f"{rule} ({len(violations)} violation(s)):\n  " + "\n  ".join(violations), pytrace=False)


# ---- finding cycles ----

def strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that all reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def cycle_through(start: str, group: set[str]) -> list[Import]:
    """One shortest cycle from `start` back to itself inside `group`, as the imports that make it."""
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for found in package_imports()[node]:
                if found.target == start:
                    return paths[node] + [found]
                if found.target in group and found.target not in paths:
                    paths[found.target] = paths[node] + [found]
                    next_frontier.append(found.target)
        frontier = next_frontier
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


# ---- 1. no cycles ----

def test_no_two_modules_import_each_other():
    graph = package_imports()
    violations = []
    for name, found in graph.items():
        for there in found:
            back = next((i for i in graph[there.target] if i.target == name), None)
            if back is not None and name < there.target:
                violations.append(f"{name} ({there.where}) and {there.target} ({back.where}) import each other")
    check("Modules that import each other", violations)


def test_the_import_graph_has_no_cycle():
    graph = {name: [i.target for i in found] for name, found in package_imports().items()}
    violations = []
    for group in strongly_connected(graph):
        if len(group) > 1:
            steps = cycle_through(group[0], set(group))
            path = " -> ".join(f"{step.source.name} ({step.where})" for step in steps)
            violations.append(f"{len(group)} modules in a cycle ({', '.join(group)}), e.g. {path} -> {group[0]}")
    check("Import cycles", violations)


# ---- 2. layers ----

def test_every_module_belongs_to_a_layer():
    missing = [f"{m.name} ({m.where})" for m in modules().values() if layer_of(m.name) is None]
    check("Modules in no layer: add them to LAYERS at the top of tests/test_layout.py", missing)


def test_no_module_imports_a_layer_above_its_own():
    violations = []
    for name, found in package_imports().items():
        own = layer_of(name)
        for i in found:
            above = layer_of(i.target)
            if own is None or above is None or above <= own:
                continue
            if i.target == FACADE and any(within(name, user) for user in FACADE_USERS):
                continue  # the public facade, used like any user's code would
            violations.append(f"{i.where}: {name} (layer {layer_name(own)}) imports {i.target} "
                              f"(layer {layer_name(above)}, above it)")
    check("Imports of a higher layer", violations)


# ---- 3. the sandbox and eryx ----

def test_the_sandbox_layer_imports_no_dspy_and_nothing_of_the_package_above_it():
    violations = []
    for module in modules().values():
        if not within(module.name, SANDBOX):
            continue
        for i in imports_of(module):
            target = own_module(i.target)
            if within(i.target, "dspy"):
                violations.append(f"{i.where}: imports {i.target} (the sandbox knows nothing of DSPy)")
            elif target and not any(within(target, allowed) for allowed in SANDBOX_MAY_IMPORT):
                violations.append(f"{i.where}: imports {target} (allowed: {', '.join(SANDBOX_MAY_IMPORT)})")
    check("The sandbox layer reaching outside itself", violations)


def test_the_ingest_layer_imports_no_dspy():
    """Reading files needs no model: `dspy_rlm.ingest` stays usable (and fast to import) without DSPy."""
    violations = [f"{i.where}: imports {i.target}" for module in modules().values() if within(module.name, INGEST)
                  for i in imports_of(module) if within(i.target, "dspy")]
    check("The ingest layer importing DSPy", violations)


def test_the_library_layer_imports_no_dspy():
    """A code library is plain Python files: `dspy_rlm.library` reads, tests and diffs them without DSPy."""
    violations = [f"{i.where}: imports {i.target}" for module in modules().values() if within(module.name, LIBRARY)
                  for i in imports_of(module) if within(i.target, "dspy")]
    check("The library layer importing DSPy", violations)


def test_only_the_sandbox_layer_imports_eryx():
    violations = [f"{i.where}: {module.name} imports {i.target}"
                  for module in modules().values() if not within(module.name, SANDBOX)
                  for i in imports_of(module) if within(i.target, "eryx")]
    check(f"eryx imported outside {SANDBOX}", violations)


# ---- 4. programs and optimizers ----

def test_only_the_cli_of_the_library_imports_programs_or_optimizers():
    violations = []
    for name, found in package_imports().items():
        if any(within(name, app) for app in (*APPLICATIONS, CLI)):
            continue
        violations += [f"{i.where}: {name} imports {i.target}"
                       for i in found if any(within(i.target, app) for app in APPLICATIONS)]
    check(f"Imports of {' or '.join(APPLICATIONS)} outside {CLI}", violations)


def test_programs_and_optimizers_are_imported_by_their_installed_names():
    bare = [folder.name for name, folder in source_roots().items() if name != FACADE]  # "programs", "optimizers"
    violations = [f"{i.where}: imports {i.target} (installed as dspy_rlm.{i.target})"
                  for module in modules().values() for i in imports_of(module)
                  if any(within(i.target, top) for top in bare)]
    check("Imports by the repository folder's name", violations)


# ---- 5. no monkeypatching ----

def imported_names(tree: ast.Module) -> set[str]:
    """The names import statements bind in this module to this package's modules and objects
    (`import dspy_rlm.core.run` binds `dspy_rlm`). Other libraries' documented settings, such
    as `tempfile.tempdir`, are theirs to allow."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names if _ours(alias.name)}
        elif isinstance(node, ast.ImportFrom) and not node.level and _ours(node.module or ""):
            names |= {alias.asname or alias.name for alias in node.names if alias.name != "*"}
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative: always this package
            names |= {alias.asname or alias.name for alias in node.names if alias.name != "*"}
    return names


def _ours(module: str) -> bool:
    return module.split(".")[0] == FACADE


def assigned_targets(node: ast.AST) -> list[ast.expr]:
    """The targets an assignment writes, with tuples and starred targets unpacked."""
    if isinstance(node, ast.Assign):
        pending = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        pending = [node.target]
    else:
        return []
    targets = []
    while pending:
        target = pending.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            pending += target.elts
        elif isinstance(target, ast.Starred):
            pending.append(target.value)
        else:
            targets.append(target)
    return targets


def root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def test_no_module_assigns_to_an_attribute_of_a_module_of_this_package():
    violations = []
    for module in modules().values():
        names = imported_names(module.tree)
        for node in ast.walk(module.tree):
            for target in assigned_targets(node):
                if isinstance(target, ast.Attribute) and root_name(target) in names:
                    violations.append(f"{module.where}:{node.lineno}: assigns {ast.unparse(target)}")
    check("Assignments to attributes of imported modules (pass the value in instead)", violations)


# ---- 6. file sizes ----

def test_no_source_file_is_over_the_line_limit():
    violations = [f"{m.where}: {m.lines} lines" for m in modules().values() if m.lines > MAX_LINES]
    check(f"Source files over {MAX_LINES} lines (split them)", violations)


# ---- 7. packaging ----

def test_every_package_folder_is_listed_in_pyproject():
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    folders = {path.parent for path in source_files()}
    missing = sorted(f"{installed_name(folder)} ({folder.relative_to(ROOT)})"
                     for folder in folders if installed_name(folder) not in listed)
    check("Package folders missing from [tool.setuptools] packages in pyproject.toml", missing)
    unknown = sorted(listed - {installed_name(folder) for folder in folders})
    check("Packages in pyproject.toml with no folder of Python files", unknown)
