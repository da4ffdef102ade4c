"""Code-repository QA (a LongBench-v2 CodeQA-like analogue): four-choice questions about a generated repo.

The repository is seeded Python: modules of functions with default
arguments, calls between functions, file writes, and classes with bases. The
context is the files concatenated as `### File: path` sections. One choice is
a fact taken from the generator; the three others are perturbed (wrong
default, caller and callee swapped, wrong base, wrong file, an invented
feature) and checked to be false. Scored by accuracy.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass, field
from typing import Any

import dspy

from dspy_rlm.lms.simulated.world import NONE, Stage, TaskPlan, split_prompt
from dspy_rlm.programs.families.base import Task, TaskFamily, check_size

VERBS = ("load save merge parse build render fetch index sync score clean split pack scan trace check sort plan "
         "route queue draft weigh stamp bind mend tally sift carve brew fold").split()
NOUNS = ("ledger orchard lantern harbor archive signal compass canvas anchor beacon quarry meadow bridge engine mirror "
         "basket letter forest candle palace tunnel feather island saddle violin marble cellar garden kettle ribbon "
         "barrel chimney ferry granary hamlet jetty kiln loom mill pantry").split()
PARAMS = {"retries": (1, 2, 3, 5, 8), "mode": ("'fast'", "'safe'", "'lazy'", "'strict'"), "limit": (10, 50, 100, 500),
          "timeout": (1.5, 5.0, 30.0), "verbose": ("True", "False"), "encoding": ("'utf-8'", "'latin-1'"),
          "batch_size": (16, 32, 64, 128)}
QUESTION = "Which statement about this repository is true? Answer with exactly one number choice (0-3).\n"
STATEMENTS = {
    "calls": "`{f}` calls `{g}`.",
    "default": "The parameter `{p}` of `{f}` defaults to {v}.",
    "inherits": "Class `{c}` inherits from `{b}`.",
    "writes": "`{f}` writes to the file '{path}'.",
    "invented": "`{f}` supports multi-GPU training.",
}
_STATEMENT = {kind: re.compile("^" + re.escape(text).replace(r"\{v\}", "(?P<v>.+)").replace(r"\{path\}", "(?P<path>.+)")
                               .replace(r"\{f\}", r"(?P<f>\w+)").replace(r"\{g\}", r"(?P<g>\w+)")
                               .replace(r"\{p\}", r"(?P<p>\w+)").replace(r"\{c\}", r"(?P<c>\w+)")
                               .replace(r"\{b\}", r"(?P<b>\w+)") + "$") for kind, text in STATEMENTS.items()}
ASK = ("Here are four statements about a code repository:\n{choices}\nUsing only the code below, which of these "
       "statements does it show to be true? Reply with their numbers separated by commas, or NONE.")


@dataclass
class Repo:
    """What the generator wrote: the files, and the facts behind the questions."""

    files: dict[str, str] = field(default_factory=dict)
    calls: dict[str, set[str]] = field(default_factory=dict)
    defaults: dict[str, dict[str, str]] = field(default_factory=dict)
    writes: dict[str, str] = field(default_factory=dict)
    bases: dict[str, str | None] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(f"### File: {path}\n{code}\n" for path, code in self.files.items())


def make_repo(size: int, rng: random.Random) -> Repo:
    repo, used, total = Repo(), set(), 0
    while total < size:
        path = f"pkg/{rng.choice(NOUNS)}_{rng.choice(NOUNS)}_{len(repo.files)}.py"
        blocks = ['"""Helpers for the {} workflow."""\n'.format(path[4:-3].replace("_", " "))]
        for _ in range(rng.randint(3, 8)):
            blocks.append(_function(repo, rng, used) if rng.random() < 0.8 or not repo.calls else _class(repo, rng, used))
        repo.files[path] = "\n\n".join(blocks)
        total += len(repo.files[path]) + len(path) + 12
    return repo


def _fresh(rng: random.Random, used: set[str], make) -> str:
    while (name := make()) in used:
        pass
    used.add(name)
    return name


def _function(repo: Repo, rng: random.Random, used: set[str]) -> str:
    name = _fresh(rng, used, lambda: f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}_{rng.choice(NOUNS)}")
    params = rng.sample(sorted(PARAMS), rng.randint(1, 3))
    repo.defaults[name] = {p: str(rng.choice(PARAMS[p])) for p in params}
    # dicts keep insertion order, so sampling from their keys is seeded without sorting every time
    callees = rng.sample(list(repo.calls), min(len(repo.calls), rng.randint(0, 3)))
    repo.calls[name] = set(callees)
    body = [f'    """{name.split("_")[0].capitalize()} the {" ".join(name.split("_")[1:])} records."""', "    data = source"]
    body += [f"    data = {callee}(data)" for callee in callees]
    if rng.random() < 0.3:
        repo.writes[name] = f"out/{name.split('_', 1)[1]}_{rng.randint(1, 99)}.csv"
        body += [f"    with open('{repo.writes[name]}', 'w') as handle:", "        handle.write(str(data))"]
    signature = ", ".join(["source", *(f"{p}={v}" for p, v in repo.defaults[name].items())])
    return f"def {name}({signature}):\n" + "\n".join(body + ["    return data"])


def _class(repo: Repo, rng: random.Random, used: set[str]) -> str:
    name = _fresh(rng, used, lambda: f"{rng.choice(NOUNS).capitalize()}{rng.choice(NOUNS).capitalize()}"
                                     f"{rng.choice(['Store', 'Client', 'Worker', 'Index'])}")
    base = rng.choice(list(repo.bases)) if repo.bases and rng.random() < 0.7 else None
    repo.bases[name] = base
    helper = rng.choice(list(repo.calls))
    return (f"class {name}{f'({base})' if base else ''}:\n    \"\"\"Keeps {name.lower()} state.\"\"\"\n\n"
            f"    def refresh(self, root='data'):\n        return {helper}(root)")


class CodeQAFamily(TaskFamily):
    """Four-choice questions whose facts come from a generated Python repository."""

    name = "codeqa"
    description = "four-choice questions about a generated Python repository"

    def make_task(self, size: int, seed: int) -> Task:
        check_size(size)
        rng = random.Random(seed)
        repo = make_repo(size, rng)
        true_kind = rng.choice([k for k in ("calls", "default", "inherits", "writes") if _can_state(repo, k)])
        choices = [_true_statement(repo, true_kind, rng)]
        while len(choices) < 4:
            false = _false_statement(repo, rng)
            if false and false not in choices and not statement_holds(repo, false):
                choices.append(false)
        rng.shuffle(choices)
        gold = next(i for i, text in enumerate(choices) if statement_holds(repo, text))
        query = QUESTION + "\n".join(f"{i}) {text}" for i, text in enumerate(choices))
        return Task(repo.text, query, str(gold), {"choices": choices, "true_kind": true_kind})

    def score(self, gold: dspy.Example, answer: Any) -> tuple[float, str]:
        found = re.search(r"\b[0-3]\b", str(answer))
        if found and found.group() == gold.answer:
            return 1.0, f"Correct: choice {gold.answer} ({gold.choices[int(gold.answer)]})."
        return 0.0, (f"Expected choice {gold.answer} ({gold.choices[int(gold.answer)]}), got {str(answer)[:40]!r}. "
                     "Only one statement is true; the others are perturbed.")

    def world(self) -> "CodeQAWorld":
        return CodeQAWorld()

    def advice(self) -> str:
        return ("Find the files that define the functions and classes the choices name (a regex on 'def name' or "
                "'class Name'), ask the sub-model which statements that code confirms, and vote.")


def _can_state(repo: Repo, kind: str) -> bool:
    return {"calls": any(repo.calls.values()), "inherits": any(repo.bases.values()), "writes": bool(repo.writes),
            "default": True}[kind]


def _true_statement(repo: Repo, kind: str, rng: random.Random) -> str:
    if kind == "calls":
        f = rng.choice(sorted(f for f, gs in repo.calls.items() if gs))
        return STATEMENTS[kind].format(f=f, g=rng.choice(sorted(repo.calls[f])))
    if kind == "inherits":
        c = rng.choice(sorted(c for c, b in repo.bases.items() if b))
        return STATEMENTS[kind].format(c=c, b=repo.bases[c])
    if kind == "writes":
        f = rng.choice(sorted(repo.writes))
        return STATEMENTS[kind].format(f=f, path=repo.writes[f])
    f = rng.choice(sorted(repo.defaults))
    p = rng.choice(sorted(repo.defaults[f]))
    return STATEMENTS[kind].format(p=p, f=f, v=repo.defaults[f][p])


def _false_statement(repo: Repo, rng: random.Random) -> str | None:
    kind = rng.choice(("calls", "default", "inherits", "writes", "invented"))
    functions = sorted(repo.calls)
    if kind == "calls" and any(repo.calls.values()):
        f = rng.choice([f for f in functions if repo.calls[f]])
        return STATEMENTS[kind].format(f=rng.choice(sorted(repo.calls[f])), g=f)  # caller and callee swapped
    if kind == "inherits" and len(repo.bases) > 1:
        c = rng.choice(sorted(repo.bases))
        return STATEMENTS[kind].format(c=c, b=rng.choice([b for b in sorted(repo.bases) if b != c]))
    if kind == "writes" and repo.writes:
        path = rng.choice(sorted(repo.writes.values()))
        return STATEMENTS[kind].format(f=rng.choice(functions), path=path)
    if kind == "invented":
        return STATEMENTS[kind].format(f=rng.choice(functions))
    f = rng.choice(functions)
    p = rng.choice(sorted(repo.defaults[f]))
    return STATEMENTS["default"].format(p=p, f=f, v=rng.choice(PARAMS[p]))


def statement_holds(repo: Repo, text: str) -> bool:
    """Whether a statement is true of the whole repository (the generator's facts)."""
    return check_statement(text, repo.calls, repo.defaults, repo.bases, repo.writes) is True


def check_statement(text: str, calls: dict, defaults: dict, bases: dict, writes: dict) -> bool | None:
    """True or False when the facts cover the statement's subject; None when its subject is not defined there."""
    for kind, pattern in _STATEMENT.items():
        found = pattern.match(text)
        if not found:
            continue
        slots = found.groupdict()
        subject = slots.get("c") or slots.get("f")
        if subject not in (bases if kind == "inherits" else defaults):
            return None
        if kind == "calls":
            return slots["g"] in calls.get(subject, set())
        if kind == "default":
            return defaults[subject].get(slots["p"]) == slots["v"]
        if kind == "inherits":
            return bases.get(subject) == slots["b"]
        if kind == "writes":
            return writes.get(subject) == slots["path"]
        return False  # invented features are never in the code
    return None


def read_code(text: str) -> Repo:
    """The facts visible in some `### File:` sections: the sub-model's reading of code."""
    repo = Repo()
    for section in re.split(r"(?m)^### File: .*\n", text):
        try:
            tree = ast.parse(section)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                args = node.args
                repo.defaults[node.name] = {a.arg: ast.unparse(d) for a, d in zip(args.args[-len(args.defaults):], args.defaults)} if args.defaults else {}
                repo.calls[node.name] = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id != "open"}
                paths = [c.args[0].value for c in ast.walk(node) if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "open"]
                if paths:
                    repo.writes[node.name] = paths[0]
            elif isinstance(node, ast.ClassDef):
                repo.bases[node.name] = ast.unparse(node.bases[0]) if node.bases else None
    return repo


# The code a model that has understood how the statements are phrased writes once: it reads the whole
# repository with `ast` and checks every choice (no sub-model call). Its `re` is `_re`, so a demo showing it
# is not read as the regex strategy (see lms/simulated/strategies.DEMO_MARKERS).
CHECK_STATEMENTS = r'''
def check_repository_statements(context, query):
    """The number (0-3) of the one choice in the query the repository's code shows to be true, or 'NONE'."""
    import ast
    import re as _re
    facts = {'calls': {}, 'defaults': {}, 'bases': {}, 'writes': {}}
    for section in _re.split(r'(?m)^### File: .*\n', context):
        try:
            tree = ast.parse(section)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                args = node.args
                positional = args.args[len(args.args) - len(args.defaults):]
                facts['defaults'][node.name] = {a.arg: ast.unparse(d) for a, d in zip(positional, args.defaults)}
                calls = [c for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
                facts['calls'][node.name] = {c.func.id for c in calls if c.func.id != 'open'}
                paths = [c.args[0].value for c in calls if c.func.id == 'open' and c.args]
                if paths:
                    facts['writes'][node.name] = paths[0]
            elif isinstance(node, ast.ClassDef):
                facts['bases'][node.name] = ast.unparse(node.bases[0]) if node.bases else None

    def holds(text):
        found = _re.match(r'^`(\w+)` calls `(\w+)`\.$', text)
        if found:
            return found.group(2) in facts['calls'].get(found.group(1), set())
        found = _re.match(r'^The parameter `(\w+)` of `(\w+)` defaults to (.+)\.$', text)
        if found:
            return facts['defaults'].get(found.group(2), {}).get(found.group(1)) == found.group(3)
        found = _re.match(r'^Class `(\w+)` inherits from `(\w+)`\.$', text)
        if found:
            return facts['bases'].get(found.group(1)) == found.group(2)
        found = _re.match(r"^`(\w+)` writes to the file '(.+)'\.$", text)
        if found:
            return facts['writes'].get(found.group(1)) == found.group(2)
        return False
    true = [number for number, text in _re.findall(r'(?m)^([0-3])\) (.+)$', query) if holds(text)]
    return true[0] if len(true) == 1 else 'NONE'
'''


class CodeQAWorld:
    """The simulated model's knowledge: how statements are phrased, and how to read Python."""

    name = "codeqa"

    def plan(self, question: str) -> TaskPlan | None:
        choices = re.findall(r"^([0-3])\) (.+)$", question, re.MULTILINE)
        if len(choices) != 4 or not question.startswith("Which statement about this repository"):
            return None
        names = sorted({re.findall(r"`(\w+)`", text)[-1 if text.startswith("The parameter") else 0] for _, text in choices})
        listing = "\n".join(f"{i}) {text}" for i, text in choices)
        return TaskPlan(
            stages=(Stage(ASK.format(choices=listing), r"\b(?:def|class) (?:" + "|".join(names) + r")\b"),),
            setup="import re",
            units="[f for f in re.split(r'(?m)^(?=### File: )', context) if f.strip()]",
            combine=("votes = Counter(x for r in replies if not r.startswith('[ERROR]') "
                     "for x in r.replace(',', ' ').split() if x.isdigit())\n"
                     "answer = votes.most_common(1)[0][0] if votes else '0'"),
            guess="'0'",
            function=CHECK_STATEMENTS,
        )

    def answer(self, prompt: str, mistake: bool = False) -> str:
        question, text = split_prompt(prompt)
        choices = re.findall(r"^([0-3])\) (.+)$", question, re.MULTILINE)
        if not choices:
            return NONE
        seen = read_code(text)
        confirmed = [i for i, statement in choices
                     if check_statement(statement, seen.calls, seen.defaults, seen.bases, seen.writes) is True]
        if mistake:
            wrong = [i for i, _ in choices if i not in confirmed]
            confirmed = [wrong[len(text) % len(wrong)]] if wrong else []
        return ", ".join(confirmed) if confirmed else NONE
