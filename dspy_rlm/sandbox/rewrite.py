"""Rewrite model-written synchronous Python so it can call the sandbox's async host functions.

Inside the sandbox, host callbacks (`llm_query`, `llm_query_batched`, tools) are
coroutine functions, and the guest compiles with top-level await allowed. Models
write `x = llm_query(p)`, so before each step we:

* wrap calls to async names as `(await f(...))`;
* turn a `def` whose own body makes such a call into `async def`, add its name to
  the async set and repeat until nothing changes (helpers calling helpers);
* turn a generator expression that now awaits into a list comprehension, because
  `join`, `sum` and friends cannot consume an async generator;
* rewrite `map(f, xs)` (or an executor's `pool.map(f, xs)`) with async `f` into
  `[(await f(_rlm_x)) for _rlm_x in xs]`: the result becomes a list, computed one
  call after another; and rewrite `asyncio.run(c)` into `(await c)`;
* leave coroutines passed to `asyncio.gather`, `wait_for`, `create_task` and
  `ensure_future` un-awaited, awaiting `gather`/`wait_for` themselves.

Edits are text insertions at AST positions, never `ast.unparse`, so the model's
line numbers (and thus tracebacks) stay the same. Matching is by name: a call
`obj.m()` is awaited only if `m` is a method defined async in the same code, or
`async_names` holds an entry `"Class.m"` (how a caller declares async methods of
classes defined in earlier steps).
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dspy_rlm.errors import RewriteError

__all__ = ["RewriteError", "make_awaitable"]


# asyncio functions that take coroutine objects: (every positional argument is a
# coroutine, the call's own result must be awaited). A Task from create_task is
# not awaited at once, so the model can start several and gather them later.
_ASYNCIO_FUNCS = {
    "gather": (True, True),
    "wait_for": (False, True),
    "create_task": (False, False),
    "ensure_future": (False, False),
}
_Def = ast.FunctionDef | ast.AsyncFunctionDef
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
# Split keeping line ends, on the same breaks as the parser: \r\n, \n and a lone \r.
_LINES = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


def make_awaitable(code: str, async_names: Iterable[str]) -> str:
    """Return `code` with calls to the functions in `async_names` awaited, and helper
    functions that make such calls turned into `async def` and awaited in turn,
    transitively. Line numbers are preserved. Code that does not parse is returned
    unchanged (the sandbox reports the SyntaxError itself)."""
    wanted = [n for n in async_names if n]
    # Fast path, taken on most steps: nothing async is mentioned, so skip parsing.
    if (
        not any(n.rpartition(".")[2] in code for n in wanted)
        and "async" not in code
        and "await" not in code
    ):
        return code
    try:
        tree = ast.parse(code)
        scan, converted = _solve(tree, wanted)
    except (SyntaxError, ValueError, RecursionError):  # ValueError: e.g. null bytes
        return code  # the sandbox reports the problem when it compiles the step
    if scan.errors:  # report the earliest problem; the model fixes one at a time
        raise RewriteError(min(scan.errors)[1])
    edits = _edits(_Source(code), scan, converted)
    return _apply(code, edits) if edits else code


@dataclass
class _Frame:
    """A scope being scanned: module, def, class body or lambda."""

    kind: str
    node: ast.AST | None = None
    genexps: list[ast.GeneratorExp] = field(default_factory=list)


class _Scan(ast.NodeVisitor):
    """One pass over the tree: find every edit needed, given the current async names."""

    def __init__(self, names: set[str], methods: set[str]) -> None:
        self.names, self.methods = names, methods
        self.frames = [_Frame("module")]
        self.order: dict[ast.AST, int] = {}  # visit order, to nest edits at one spot
        self.awaited: list[ast.Call] = []  # calls to wrap in (await ...)
        self.needs_async: dict[ast.FunctionDef, ast.AST] = {}  # def -> first await in it
        self.genexps: dict[ast.GeneratorExp, None] = {}  # ordered set to make lists
        # Calls rewritten around one argument: (call, argument, text before, text after).
        self.spans: list[tuple[ast.Call, ast.expr, str, str]] = []
        self.errors: list[tuple[int, str]] = []  # (line, message)
        self.done: set[ast.AST] = set()  # already awaited, or must stay a coroutine

    def visit(self, node: ast.AST) -> None:
        self.order[node] = len(self.order)
        super().visit(node)

    def mark(self, node: ast.AST, what: str | None = None) -> None:
        """Record that an await happens at `node`; `what` names a call we add."""
        frame = self.frames[-1]
        self.genexps.update(dict.fromkeys(frame.genexps))
        if frame.kind == "def" and isinstance(frame.node, ast.FunctionDef):
            self.needs_async.setdefault(frame.node, node)
        elif what and frame.kind == "lambda":
            self.errors.append((node.lineno, (
                f"line {node.lineno}: {what} is called inside a lambda, where it cannot run; "
                "use a def function or a for loop instead.")))
        elif what and frame.kind == "class":
            self.errors.append((node.lineno, (
                f"line {node.lineno}: {what} is called directly in the body of class "
                f"{frame.node.name}, where it cannot run; call it inside a method, "  # type: ignore[union-attr]
                "or before the class and keep the result.")))

    def visit_Call(self, node: ast.Call) -> None:
        special, kept = _asyncio_name(node.func), node in self.done
        if special in _ASYNCIO_FUNCS:
            every, await_result = _ASYNCIO_FUNCS[special]
            for arg in node.args if every else node.args[:1]:
                self.done.update(_coroutine_slots(arg))
            if await_result and not kept:
                self._await(node)
        elif kept:
            pass  # a coroutine handed to gather & co., or already awaited
        elif special == "run" and len(node.args) == 1 and not node.keywords:
            # asyncio.run() fails inside the running loop; await its coroutine instead.
            self.done.add(node.args[0])
            self.spans.append((node, node.args[0], "(await ", ")"))
            self.mark(node, "asyncio.run(...)")
        elif self._is_async_map(node):
            fn = node.args[0].id  # type: ignore[attr-defined]
            self.spans.append((node, node.args[1], f"[(await {fn}(_rlm_x)) for _rlm_x in ", "]"))
            self.mark(node, f"map({fn}, ...)")
        elif self._is_async(node.func):
            self._await(node)
        self.generic_visit(node)

    def _await(self, call: ast.Call) -> None:
        self.awaited.append(call)
        self.mark(call, f"{ast.unparse(call.func)}(...)")

    def _is_async(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in self.names
        return isinstance(func, ast.Attribute) and func.attr in self.methods

    def _is_async_map(self, node: ast.Call) -> bool:
        # Also an executor's `pool.map(f, xs)`: its threads cannot run coroutines.
        func, args = node.func, node.args
        is_map = (isinstance(func, ast.Name) and func.id == "map") or (
            isinstance(func, ast.Attribute) and func.attr == "map")
        return (is_map and len(args) == 2 and not node.keywords
                and isinstance(args[0], ast.Name) and args[0].id in self.names)

    def visit_Await(self, node: ast.Await) -> None:
        self.done.add(node.value)
        self.mark(node)
        self.generic_visit(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self.mark(node)
        self.generic_visit(node)

    visit_AsyncWith = visit_AsyncFor  # type: ignore[assignment]

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            self.mark(node.target)
        self.generic_visit(node)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self.frames[-1].genexps.append(node)
        self.generic_visit(node)
        self.frames[-1].genexps.pop()

    def visit_FunctionDef(self, node: _Def) -> None:
        # Decorators and defaults run in the enclosing scope, the body in its own.
        for expr in [*node.decorator_list, node.args, node.returns]:
            if expr is not None:
                self.visit(expr)
        self._inside(_Frame("def", node), node.body)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._inside(_Frame("lambda", node), [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expr)
        self._inside(_Frame("class", node), node.body)

    def _inside(self, frame: _Frame, body: list) -> None:
        self.frames.append(frame)
        for child in body:
            self.visit(child)
        self.frames.pop()


def _asyncio_name(func: ast.expr) -> str | None:
    """`gather` for `asyncio.gather` or a bare imported `gather`; None otherwise."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.attr if func.value.id == "asyncio" else None
    if isinstance(func, ast.Name) and func.id in _ASYNCIO_FUNCS:
        return func.id
    return None


def _coroutine_slots(expr: ast.expr) -> Iterator[ast.expr]:
    """Calls whose results an asyncio function receives as coroutine objects:
    `gather(a(), *[b(p) for p in ps])` yields the calls `a()` and `b(p)`."""
    if isinstance(expr, ast.Starred):
        yield from _coroutine_slots(expr.value)
    elif isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
        for elt in expr.elts:
            yield from _coroutine_slots(elt)
    elif isinstance(expr, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
        yield from _coroutine_slots(expr.elt)
    elif isinstance(expr, ast.IfExp):
        yield from _coroutine_slots(expr.body)
        yield from _coroutine_slots(expr.orelse)
    elif isinstance(expr, ast.Call):
        yield expr  # also keeps `map(f, xs)` lazy here: gather(*map(f, xs)) is right


def _own_scope(fn: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function body, not descending into nested defs, lambdas or classes."""
    stack = list(fn.body)  # type: ignore[attr-defined]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(ast.iter_child_nodes(node))


def _solve(tree: ast.Module, wanted: list[str]) -> tuple[_Scan, set[ast.FunctionDef]]:
    """Scan until the set of defs that must become async stops growing."""
    method_defs = {s for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                   for s in c.body if isinstance(s, _Def)}
    generators = {fn for fn in ast.walk(tree) if isinstance(fn, _Def)
                  and any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_scope(fn))}
    names = {n for n in wanted if "." not in n}
    methods = {n.rpartition(".")[2] for n in wanted if "." in n}
    for fn in ast.walk(tree):
        if isinstance(fn, _Def):
            target = methods if fn in method_defs else names
            # A sync redefinition replaces an async function from an earlier step;
            # async generators are iterated, never awaited.
            if isinstance(fn, ast.FunctionDef) or fn in generators:
                target.discard(fn.name)
            else:
                target.add(fn.name)
    converted: set[ast.FunctionDef] = set()
    while True:
        scan = _Scan(names, methods)
        scan.visit(tree)
        new = set(scan.needs_async) - converted
        if not new:
            scan.errors += [_generator_error(fn, scan.needs_async[fn])
                            for fn in converted & generators]
            return scan, converted
        converted |= new
        for fn in new:
            (methods if fn in method_defs else names).add(fn.name)


def _generator_error(fn: ast.FunctionDef, cause: ast.AST) -> tuple[int, str]:
    what = f"{ast.unparse(cause.func)}(...)" if isinstance(cause, ast.Call) else "an await"
    return fn.lineno, (
        f"line {fn.lineno}: generator function {fn.name}() calls {what} on line "
        f"{cause.lineno}, which a generator cannot wait for; collect the values in "  # type: ignore[attr-defined]
        "a list and return it instead of using yield.")


class _Source:
    """Maps AST positions (line, UTF-8 byte column) to offsets in the code string."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.lines = _LINES.split(code)
        self.starts = [0, *itertools.accumulate(map(len, self.lines))]

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        chars = col if line.isascii() else len(line.encode()[:col].decode())
        return self.starts[lineno - 1] + chars

    def start(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def replace(self, start: int, end: int, text: str) -> tuple[int, int, str]:
        """Replace a span, keeping its line breaks so later lines do not move."""
        return start, end, text + "\n" * (len(_LINES.split(self.code[start:end])) - 1)


def _edits(src: _Source, scan: _Scan, converted: set[ast.FunctionDef]) -> list[tuple]:
    """Edits as (start, end, rank, text), sorted. At one position, closing text comes
    before opening text; openers nest outer-first and closers inner-first."""
    edits: list[tuple] = []

    def add(start: int, end: int, text: str, node: ast.AST, closing: bool) -> None:
        rank = (0, -scan.order[node]) if closing else (1, scan.order[node])
        edits.append((start, end, rank, text))

    for call in scan.awaited:
        add(src.start(call), src.start(call), "(await ", call, False)
        add(src.end(call), src.end(call), ")", call, True)
    for fn in converted:  # col_offset points at `def`, after any decorators
        add(src.start(fn), src.start(fn), "async ", fn, False)
    for gen in scan.genexps:
        # Brackets go just inside the parentheses, which are the genexp's own or,
        # for a sole argument, the call's: `f(x for x)` -> `f([x for x])`.
        add(src.start(gen) + 1, src.start(gen) + 1, "[", gen, False)
        add(src.end(gen) - 1, src.end(gen) - 1, "]", gen, True)
    for call, arg, before, after in scan.spans:
        add(*src.replace(src.start(call), src.start(arg), before), call, False)
        add(*src.replace(src.end(arg), src.end(call), after), call, True)
    return sorted(edits, key=lambda e: (e[0], e[2]))


def _apply(code: str, edits: list[tuple]) -> str:
    out, pos = [], 0
    for start, end, _, text in edits:
        out += [code[pos:start], text]
        pos = end
    out.append(code[pos:])
    return "".join(out)
