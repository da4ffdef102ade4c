"""Code nested too deeply for the guest's compiler, refused on the host."""

from __future__ import annotations

import ast
import io
import tokenize

# The guest compiles each step on a small native stack that CPython cannot see;
# overflowing it aborts the whole host process (measured on pyeryx 0.11: brackets
# nested 150 deep, or an expression 3,000 operators long). Such code is refused
# on the host, with room to spare: 100 and 1,000 compiled fine.
MAX_BRACKET_DEPTH = 100
MAX_EXPRESSION_DEPTH = 1_000
_OPENERS, _CLOSERS = frozenset("([{"), frozenset(")]}")


def too_deep(code: str) -> str | None:
    """Why `code` is too deeply nested to compile safely in the guest, or None."""
    if sum(code.count(c) for c in _OPENERS) > MAX_BRACKET_DEPTH:
        depth = deepest = 0
        try:
            for token in tokenize.generate_tokens(io.StringIO(code).readline):
                if token.type == tokenize.OP and token.string in _OPENERS:
                    depth += 1
                    deepest = max(deepest, depth)
                elif token.type == tokenize.OP and token.string in _CLOSERS:
                    depth -= 1
                if deepest > MAX_BRACKET_DEPTH:
                    break
        except (SyntaxError, tokenize.TokenError, ValueError):
            pass  # what was read before the error still counts
        if deepest > MAX_BRACKET_DEPTH:
            return (f"SyntaxError: brackets are nested more than {MAX_BRACKET_DEPTH} deep; the sandbox cannot "
                    "compile that. Build deeply nested data with a loop instead of writing it out.")
    if len(code) > MAX_EXPRESSION_DEPTH:  # shorter code cannot nest that deep
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            return None  # the guest reports it
        except (RecursionError, MemoryError):
            depth = MAX_EXPRESSION_DEPTH + 1
        else:
            depth = _ast_depth(tree)
        if depth > MAX_EXPRESSION_DEPTH:
            return (f"SyntaxError: an expression is nested more than {MAX_EXPRESSION_DEPTH:,} levels deep "
                    "(e.g. a very long chain of + or method calls); the sandbox cannot compile that. "
                    "Split it into several statements or use a loop, sum() or ''.join().")
    return None


def _ast_depth(tree: ast.AST) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_EXPRESSION_DEPTH:
            break
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest
