"""Python source as the library reads it, with `ast` only (nothing runs here).

- `read_function`: one library file -> its public function, signature, docstring and
  normalised code; a file that breaks the rules gets a `LibraryError` naming the fix.
- `normalise`: the stable form of a file (`ast.unparse`: comments and layout dropped,
  imports sorted first), so a regenerated library diffs cleanly.
- Harvest helpers: `defined_functions` (the `def`s of one step's code, with the imports
  they need), `free_names` (what a function reads that it does not define), `called_names`.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

from dspy_rlm.errors import LibraryError

# Names the sandbox defines for every step (host functions and the termination functions).
SANDBOX_NAMES = frozenset({"llm_query", "llm_query_batched", "llm_batch", "rlm_query", "rlm_query_batched",
                           "SUBMIT", "FINAL", "FINAL_VAR", "print"})
_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class FunctionSource:
    """A library file's public function, as read from its source."""

    name: str
    signature: str  # "find_needle(context, query)"
    summary: str  # the first line of the docstring
    code: str  # the normalised module source (imports, private helpers, the function)
    parameters: tuple[str, ...]
    required: tuple[str, ...]


def parse(code: str, where: str) -> ast.Module:
    try:
        return ast.parse(code, where)
    except SyntaxError as error:
        raise LibraryError(f"{where}: syntax error at line {error.lineno}: {error.msg}; fix the code "
                           "(every library file must be valid Python)") from None


def read_function(code: str, where: str, expected: str | None = None) -> FunctionSource:
    """The one public function of a library file, checked (see the module docstring)."""
    tree = parse(code, where)
    public = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
              and not node.name.startswith("_")]
    if len(public) != 1:
        names = ", ".join(node.name for node in public) or "none"
        raise LibraryError(f"{where}: a library file holds exactly one public function (found: {names}); "
                           "move the others to files of their own, or make helpers private (_name)")
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Import, ast.ImportFrom, ast.Assign,
                                 ast.AnnAssign)):
            raise LibraryError(f"{where}:{node.lineno}: only imports, functions and private constants may sit at "
                               "the top of a library file (no code that runs on load); move it into the function")
    function = public[0]
    if expected is not None and function.name != expected:
        raise LibraryError(f"{where}: the file defines {function.name!r}; name the file {function.name}.py "
                           "(one function per file, named after it)")
    docstring = ast.get_docstring(function)
    if not docstring or not docstring.strip():
        raise LibraryError(f"{where}: {function.name} has no docstring; add one whose first line says what it "
                           "returns (the prompt lists that line)")
    args = function.args
    parameters = tuple(a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs))
    positional = [*args.posonlyargs, *args.args]
    required = tuple(a.arg for a in positional[:len(positional) - len(args.defaults)]) + tuple(
        a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults) if default is None)
    return FunctionSource(name=function.name, signature=f"{function.name}({ast.unparse(args)})",
                          summary=docstring.strip().splitlines()[0].strip(), code=normalise(code, where),
                          parameters=parameters, required=required)


def normalise(code: str, where: str = "<code>") -> str:
    """The stable form of a module: imports first (sorted, deduplicated), then the rest, unparsed."""
    tree = parse(code, where)
    imports = sorted({ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))})
    rest = [ast.unparse(node) for node in tree.body if not isinstance(node, (ast.Import, ast.ImportFrom))]
    parts = (["\n".join(imports)] if imports else []) + rest
    return "\n\n".join(parts) + "\n"


# ---- harvest helpers -------------------------------------------------------------------

@dataclass(frozen=True)
class DefinedFunction:
    """A function one step's code defined, with the step's imports it uses and the names it lacks."""

    name: str
    code: str  # normalised: the imports it needs, then the def
    missing: tuple[str, ...]  # names it reads that neither it, its imports nor the sandbox define
    calls: tuple[str, ...]  # other functions of the same step it calls


def defined_functions(step_code: str, known_imports: dict[str, str] | None = None) -> list[DefinedFunction]:
    """The top-level `def`s of a step, each made self-contained with the imports it uses.

    `known_imports` (name -> import statement) carries imports of earlier steps; code that does
    not parse gives no functions."""
    try:
        tree = ast.parse(step_code)
    except SyntaxError:
        return []
    imports = dict(known_imports or {})
    imports.update(imported_names(tree))
    defs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    found = []
    for name, node in defs.items():
        free = free_names(node)
        needed = sorted({imports[n] for n in free if n in imports})
        calls = tuple(sorted(n for n in free if n in defs and n != name))
        missing = tuple(sorted(n for n in free if n not in imports and n not in defs and n not in SANDBOX_NAMES
                               and n not in _BUILTINS))
        found.append(DefinedFunction(name, normalise("\n".join([*needed, ast.unparse(node)])), missing, calls))
    return found


def imported_names(tree: ast.Module) -> dict[str, str]:
    """Name -> the import statement (one name each) that binds it, for the top-level imports of `tree`."""
    bound = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = ast.unparse(ast.Import(names=[alias]))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name != "*":
                    statement = ast.ImportFrom(module=node.module, names=[alias], level=0)
                    bound[alias.asname or alias.name] = ast.unparse(statement)
    return bound


def free_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names `function` reads that are not its parameters or assigned anywhere inside it."""
    local = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
    read = set()
    for node in ast.walk(function):
        if node is function:
            continue
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else local).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local.add(node.name)
        elif isinstance(node, ast.arg):
            local.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            local |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            local.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            read |= set(node.names)
    return read - local


def called_names(code: str) -> set[str]:
    """The plain names `code` calls (`f(...)`); code that does not parse calls nothing."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
