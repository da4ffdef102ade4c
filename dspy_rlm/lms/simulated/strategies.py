"""The simulated root model's strategies: how it picks one, and the code each one writes.

Strategies, after the RLM paper's observed behaviours:

- `batched`: split the data into chunks sized to the sub-model budget, ask about
  every chunk with `llm_query_batched`, aggregate in code.
- `regex`: grep the data for keywords from the question and the model's priors,
  then ask the sub-model about the hits only.
- `sequential`: one `llm_query` per line (or document) in a loop, as Qwen3-Coder
  did in the paper; it runs into the call budget on large inputs.
- `peek`: read a sample from the start of the data and answer from that.
- `guess`: answer from what the first look showed, without reading further.

How the choice depends on the prompt (the part an optimizer can change):

1. Start from `BASELINE`, the mix under the library's default instructions.
2. Count each strategy's `INSTRUCTION_MARKERS` in the instructions, beyond
   the occurrences already in the default instructions (so defaults count 0).
3. Classify each demo (an earlier assistant turn) by the first strategy in
   `DEMO_MARKERS` its code shows; a demo counts 3.
4. weight = baseline × (1 + instruction count + demo count); draw one
   strategy with a seeded RNG. The draw is made once per task and seed, so
   every step of one run follows the same strategy.

The simulator does not understand negation: "do not batch" raises `batched`.
"""

from __future__ import annotations

import random
import re

from dspy_rlm.core.signatures import CODE_INSTRUCTIONS
from dspy_rlm.lms.simulated.world import PROMPT_SEPARATOR, TaskPlan

STRATEGIES = ("batched", "regex", "sequential", "peek", "guess")
BASELINE = {"batched": 0.30, "regex": 0.20, "sequential": 0.20, "peek": 0.15, "guess": 0.15}
DEMO_WEIGHT = 3
INSTRUCTION_MARKERS = {
    "batched": (r"\bllm_query_batched\b", r"\bllm_batch\b", r"\bchunks?\b", r"\bbatch(?:ed|es)?\b", r"\bconcurrent(?:ly)?\b"),
    "regex": (r"\bre\.(?:search|findall|finditer|compile|match)\b", r"\bregex(?:es)?\b", r"\bregular expressions?\b",
              r"\bkeywords?\b", r"\bgrep\b"),
    "sequential": (r"\bllm_query\b", r"\bone (?:line|document|file|item|chunk) at a time\b", r"\bone by one\b"),
    "peek": (r"\bsample\b", r"\bpeek\b", r"\bfirst part\b"),
    "guess": (r"\bguess(?:es|ing)?\b", r"\bfrom memory\b", r"\bwithout reading\b"),
}
# In precedence order: a demo that greps and then batches shows `regex`.
DEMO_MARKERS = (
    ("regex", r"\bre\.(?:search|findall|finditer|compile|match)\("),
    ("peek", r"\bsample\b"),
    ("batched", r"\b(?:llm_query_batched|llm_batch)\("),
    ("sequential", r"\bllm_query\("),
    ("guess", r"\bguess"),
)
SAMPLE_CHARS = 8_000
MIN_CHUNK_CHARS = 2_000
MAX_CHUNK_CHARS = 400_000


def _count(text: str, strategy: str) -> int:
    return sum(len(re.findall(pattern, text, re.IGNORECASE)) for pattern in INSTRUCTION_MARKERS[strategy])


_DEFAULT_COUNTS = {strategy: _count(CODE_INSTRUCTIONS, strategy) for strategy in STRATEGIES}


def demo_strategy(code: str) -> str | None:
    """The strategy a demo's code shows, or None (exploration and SUBMIT-only steps show none)."""
    for strategy, pattern in DEMO_MARKERS:
        if re.search(pattern, code):
            return strategy
    return None


def strategy_weights(instructions: str, demo_codes: list[str] = ()) -> dict[str, float]:
    """Unnormalised strategy weights for these instructions and demos (see the module docstring)."""
    shown = [demo_strategy(code) for code in demo_codes]
    weights = {}
    for strategy in STRATEGIES:
        extra = max(0, _count(instructions, strategy) - _DEFAULT_COUNTS[strategy])
        weights[strategy] = BASELINE[strategy] * (1 + extra + DEMO_WEIGHT * shown.count(strategy))
    return weights


def strategy_probabilities(instructions: str, demo_codes: list[str] = ()) -> dict[str, float]:
    """The probability of each strategy for these instructions and demos."""
    weights = strategy_weights(instructions, demo_codes)
    total = sum(weights.values())
    return {strategy: weight / total for strategy, weight in weights.items()}


def choose_strategy(weights: dict[str, float], rng: random.Random) -> str:
    """One seeded draw from the weights."""
    strategies = list(weights)
    return rng.choices(strategies, weights=[weights[s] for s in strategies])[0]


# ---- the code each step writes -------------------------------------------------------------
# Every step starts with a `# sim:` tag, so the simulator can read its own history.

def peek_code(data: str, question: str) -> str:
    """Step 1 of every strategy: sizes, the head of the data, the question in full."""
    return (f"# sim: peek\nprint(type({data}).__name__, len({data}))\n"
            f"print(repr({data}[:500]) if isinstance({data}, str) else [str(x)[:200] for x in {data}[:3]])\n"
            f"print('QUESTION:', repr({question}))")


HELPERS = """
def make_chunks(ids, limit):
    \"\"\"The unit ids grouped into chunks of at most `limit` characters.\"\"\"
    out, current, size = [], [], 0
    for i in ids:
        if current and size + len(units[i]) > limit:
            out.append(current)
            current, size = [], 0
        current.append(i)
        size += len(units[i]) + 1
    return out + [current] if current else out

def pick(replies):
    \"\"\"The most common usable reply (not NONE, not an error), or 'NONE'.\"\"\"
    found = [r.strip() for r in replies if r.strip() and r.strip().upper() != 'NONE' and not r.startswith('[ERROR]')]
    return Counter(found).most_common(1)[0][0] if found else 'NONE'
"""


def work_code(strategy: str, plan: TaskPlan, data: str, calls_left: int, library: tuple[str, ...] = ()) -> str:
    """The step that reads the data with `strategy` and sets `answer`.

    Chunks are sized so one stage uses about three quarters of the calls left, split over the stages.
    Helpers a code library already defines (`library` names them) are called, not defined again; the
    plan's whole-task function, if any, is defined and its result printed as a cross-check.
    """
    if strategy == "guess":
        return guess_code(plan, data, "guess")
    calls = max(1, calls_left * 3 // 4 // len(plan.stages))
    lines = [
        f"# sim: work {strategy}",
        *([f"context = {data}"] if data != "context" else []),
        "from collections import Counter",
        *(["import re"] if strategy == "regex" else []),
        *([plan.setup] if plan.setup else []),
        f"units = {plan.units}",
        f"keep = [i for i, u in enumerate(units) if {plan.unit_filter or 'u.strip()'}]",
        "total = sum(len(units[i]) + 1 for i in keep)",
        f"limit = min({MAX_CHUNK_CHARS}, max({MIN_CHUNK_CHARS}, total // {calls} + 1))",
        "print(len(units), 'units,', len(keep), 'kept,', total, 'characters')",
        _helpers(library),
        f"asks = {[stage.ask for stage in plan.stages]!r}",
        *([f"cues = {[stage.keywords for stage in plan.stages]!r}"] if strategy == "regex" else []),
        f"entity = {plan.start!r}",
        *(f"{name} = []" for name in plan.outputs),
        "trail = []  # what each stage found, and in which units",
        "for n, ask in enumerate(asks):",
        "    ask = ask.replace('{entity}', entity)",
        *_select(strategy),
        f"    prompts = [ask + {PROMPT_SEPARATOR!r} + '\\n'.join(units[i] for i in c) for c in chunk_ids]",
        *_query(strategy),
        "    print(f'stage {n + 1}: {len(replies)} replies,', sum(pick([r]) != 'NONE' for r in replies), 'with an answer')",
        "    trail.append((pick(replies), [i for c, r in zip(chunk_ids, replies) if pick([r]) != 'NONE' for i in c]))",
        "    if n + 1 < len(asks):",
        "        entity = pick(replies)",
        "        print('  ->', entity)",
        plan.combine,
        "print('ANSWER:', repr(answer))",
        *_cross_check(plan, data, library),
    ]
    return "\n".join(lines)


def function_name(source: str) -> str:
    """The name of the function a plan's `function` source defines ("" for none)."""
    found = re.search(r"^def (\w+)\(", source, re.MULTILINE)
    return found.group(1) if found else ""


def _helpers(library: tuple[str, ...]) -> str:
    """HELPERS without the functions the library already defines."""
    blocks = [block for block in HELPERS.split("\n\n") if function_name(block) not in library]
    return "\n\n".join(blocks)


def _cross_check(plan: TaskPlan, data: str, library: tuple[str, ...]) -> list[str]:
    name = function_name(plan.function)
    if not name:
        return []
    defined = [] if name in library else [plan.function.strip("\n")]
    return [*defined, f"print('cross-check:', repr({name}({data}, query)))"]


def delegate_code(plan: TaskPlan, data: str) -> str:
    """The work step at `max_depth >= 2`: one child run per unit, then the plan's `delegate_combine`."""
    return "\n".join([
        "# sim: work delegate",
        *([f"context = {data}"] if data != "context" else []),
        *([plan.setup] if plan.setup else []),
        f"units = {plan.units}",
        f"replies = rlm_query_batched([{plan.delegate!r}] * len(units), contexts=units)",
        "print(len(replies), 'child runs answered:', replies[:8])",
        "# A child that found nothing is asked once more, in other words (a fresh run, a fresh approach).",
        "again = [i for i, r in enumerate(replies) if r.startswith('[ERROR]') or r.strip().upper() in ('NONE', 'UNKNOWN', '')]",
        "if again:",
        f"    retried = rlm_query_batched([{(plan.delegate + ' (A second attempt: read it in full.)')!r}] * len(again), "
        "contexts=[units[i] for i in again])",
        "    for i, r in zip(again, retried):",
        "        replies[i] = r",
        "    print(len(again), 'child runs retried:', retried[:8])",
        plan.delegate_combine,
        "print('ANSWER:', repr(answer))",
    ])


def offers_recursion(instructions: str) -> bool:
    """Whether the instructions say the REPL has `rlm_query` (the RLM has `max_depth >= 2`)."""
    return "`rlm_query(prompt" in instructions


def library_code(plan: TaskPlan, data: str) -> str:
    """The work step when the code library defines the plan's whole-task function: call it."""
    name = function_name(plan.function)
    return f"# sim: work library\nanswer = {name}({data}, query)\nprint('ANSWER:', repr(answer))"


def _select(strategy: str) -> list[str]:
    if strategy == "regex":
        return ["    pattern = re.compile(cues[n].replace('{entity}', re.escape(entity)), re.IGNORECASE)",
                "    hits = [i for i in keep if pattern.search(units[i])]",
                "    print(f'stage {n + 1}: {len(hits)} units match {pattern.pattern!r}')",
                "    chunk_ids = make_chunks(hits, limit)"]
    if strategy == "sequential":
        return ["    chunk_ids = [[i] for i in keep]  # one line (or document) per call"]
    if strategy == "peek":
        return [f"    sample = make_chunks(keep, {SAMPLE_CHARS})[:1]  # read the first part only",
                "    chunk_ids = sample"]
    return ["    chunk_ids = make_chunks(keep, limit)"]


def _query(strategy: str) -> list[str]:
    if strategy in ("sequential", "peek"):
        return ["    replies = []", "    for p in prompts:", "        replies.append(llm_query(p))"]
    return ["    replies = llm_query_batched(prompts)"]


def salvage_code(plan: TaskPlan) -> str:
    """After the budget ran out mid-loop: aggregate the replies gathered so far."""
    return "\n".join([
        "# sim: salvage",
        "chunk_ids = chunk_ids[:len(replies)]",
        "if n + 1 < len(asks):",
        *("    " + line for line in f"# the budget ran out before the last hop: guess\nanswer = {plan.guess}".splitlines()),
        "else:",
        *("    " + line for line in plan.combine.splitlines()),
        "print('ANSWER:', repr(answer), 'from', len(replies), 'replies')",
    ])


def guess_code(plan: TaskPlan | None, data: str, tag: str = "guess") -> str:
    """Answer without reading further (the plan's guess, or a shrug)."""
    guess = plan.guess if plan else "'unknown'"
    prefix = "" if data == "context" else f"context = {data}\n"
    units = f"{plan.setup}\nunits = {plan.units}\n".lstrip() if plan else ""
    extras = "".join(f"{name} = []\n" for name in (plan.outputs if plan else ()))
    return f"# sim: work {tag}\n{prefix}{units}{extras}answer = {guess}  # a guess from the first look\nprint('ANSWER:', repr(answer))"


def submit_code(style: str, outputs: list[str], cast: bool = False) -> str:
    """End the run; `style` is FINAL, FINAL_VAR or SUBMIT (SUBMIT whenever there are several outputs).

    The first output takes `answer`; others take the variables of their own name.
    After a refused submission (`cast`), the answer is sent as a string and missing extras as [].
    """
    value = "str(answer)" if cast else "answer"
    first, rest = outputs[0], outputs[1:]
    if rest or style == "SUBMIT" or cast:
        extras = [f"{name}=globals().get({name!r}, [])" if cast else f"{name}={name}" for name in rest]
        return f"# sim: submit\nSUBMIT({', '.join([f'{first}={value}', *extras])})"
    if style == "FINAL_VAR":
        return "# sim: submit\nFINAL_VAR('answer')"
    return "# sim: submit\nFINAL(answer)"
