"""The simulated model's world for `dspy-rlm ask`: any files, any question.

Not a task family: the data is whatever files the user gave, read into one `context`
string with a `files` index (path, type, size, offset, chars, status, reason). The root
model's plan writes real code that runs in the sandbox:

1. look at `files` (how many, of which types, which were not read and why);
2. grep `context` file by file (through the index's offsets) for the question's key
   words, keeping each hit as `path:line: text`;
3. ask the sub-model about the best-matching passages with `llm_query_batched`;
4. answer from what it found: a count computed in the sandbox ("How many lines contain
   ERROR?"), the files that mention a term ("Which file mentions X?"), or the passage
   the sub-model picked; otherwise it says it could not find it.

Nothing is hard-coded: every answer is computed from the files. Every answer starts with
`SIMULATED_PREFIX`, since it comes from a simulated model, not a language model.
"""

from __future__ import annotations

import ast
import re

from dspy_rlm.lms.simulated.world import NONE, Stage, TaskPlan, register_world, split_prompt

SIMULATED_PREFIX = "[simulated model]"
PASSAGES = 120  # passages the sub-model reads at most (the best-matching lines)
KEPT_LINES = 20_000  # matching lines kept for ranking; all of them are counted
LINE_CHARS = 300  # characters of a matching line shown

_QUOTED = re.compile(r"""'([^']+)'|"([^"]+)"|`([^`]+)`""")
_WORD = re.compile(r"[A-Za-z0-9_][\w.\-/]*[\w]|[A-Za-z0-9_]")
_COUNT = re.compile(r"\bhow many\b.*?\b(?:lines?|times|entries|rows|occurrences|records)\b", re.I)
_WHICH = re.compile(r"\b(?:which|what)\s+(?:\w+\s+)?(?:files?|documents?|sources?|modules?|pages?)\b"
                    r"|\bin which\b|\bwhere\b", re.I)
_VERB = re.compile(r"\b(?:contains?|containing|mentions?|mentioning|with|says?|includes?|defines?|defining|"
                   r"references?|uses?|using|about|has|have|talks? about|refers? to)\s+(?:the\s+(?:word|term|string)\s+)?"
                   r"(?P<term>[\w][\w.\-/]*)", re.I)
_STOP = frozenset("""a an and any are as at be by can contain contains containing could do does file files find for from
    has have how i in into is it its line lines many me mention mentions most my of on or say says show tell that the
    their them there these this those to use uses used using was what when where which who why will with word you
    your about all each every our we been than then""".split())
_ASK_COUNT = re.compile(r"^Count the lines below that contain (?P<term>'.*?'|\".*?\") \(case (?P<case>\w+)\)")
_ASK_WHICH = re.compile(r"^Which files do the lines below come from that mention (?P<term>'.*?'|\".*?\")\?")
_ASK_BEST = re.compile(r"Key words: (?P<terms>\[.*?\])\.")

SETUP = r'''
import re
from collections import Counter
TERMS = {terms!r}
PATTERN = re.compile({pattern!r}, {flags})
included = [f for f in files if f['status'] == 'ok' and f['chars'] > 0]
print(len(files), 'files in the index,', len(included), 'with text:', dict(Counter(f['type'] for f in included)))
for f in [f for f in files if f['status'] != 'ok'][:10]:
    print('  not read:', f['path'], '-', f['reason'])

def grep_lines(text, index, pattern, keep={kept}):
    """The lines matching `pattern` as 'path:line: text' (the first `keep`), and the matching lines per file."""
    found, per_file = [], Counter()
    for f in index:
        if f['status'] != 'ok' or f['chars'] <= 0:
            continue
        start, end = f['offset'], f['offset'] + f['chars']
        line_no, counted_to, last = 1, start, -1
        for m in pattern.finditer(text, start, end):
            line_start = max(start, text.rfind('\n', start, m.start()) + 1)
            if line_start == last:  # another match on the same line
                continue
            line_no += text.count('\n', counted_to, line_start)
            counted_to = last = line_start
            line_end = text.find('\n', line_start, end)
            line_end = end if line_end < 0 else line_end
            per_file[f['path']] += 1
            if len(found) < keep:
                found.append(f"{{f['path']}}:{{line_no}}: {{text[line_start:min(line_end, line_start + {line_chars})]}}")
    return found, per_file

def best_passages(lines, terms, n={passages}):
    """The `n` lines with the most distinct key words, in file order."""
    lowered = [t.lower() for t in terms]
    ranked = sorted(range(len(lines)), key=lambda i: (-sum(t in lines[i].lower() for t in lowered), i))
    return [lines[i] for i in sorted(ranked[:n])]

ALL, PER_FILE = grep_lines(context, files, PATTERN)
print(sum(PER_FILE.values()), 'matching lines in', len(PER_FILE), 'files:', PER_FILE.most_common(5))
'''

COMBINE_COUNT = '''
n = sum(PER_FILE.values())
where = ', '.join(f'{{p}}: {{c}}' for p, c in PER_FILE.most_common(10))
answer = (f"{prefix} {{n}} lines contain {{TERMS[0]!r}} (counted in the sandbox over {{len(included)}} files"
          + (f"; {{where}}" if n else "") + f"; the sub-model checked {{len(units)}} of them).")
'''

COMBINE_WHICH = '''
paths = sorted(PER_FILE)
shown = ', '.join(paths[:50]) + (f' and {{len(paths) - 50}} more' if len(paths) > 50 else '')
answer = (f"{prefix} {{len(paths)}} of {{len(included)}} files mention {{TERMS[0]!r}}: {{shown}}." if paths
          else f"{prefix} I could not find {{TERMS[0]!r}} in any of the {{len(included)}} files.")
'''

COMBINE_BEST = '''
found = [r.strip() for r in replies if r.strip() and r.strip().upper() != 'NONE' and not r.startswith('[ERROR]')]
best = max(found, key=lambda r: sum(t.lower() in r.lower() for t in TERMS)) if found else None
n = sum(PER_FILE.values())
answer = (f"{prefix} The passage that best matches the question is {{best}} ({{n}} matching lines in "
          f"{{len(PER_FILE)}} files; a simulated model quotes it, a language model would answer from it)." if best
          else f"{prefix} I could not find an answer in the {{len(included)}} files (no line mentions "
               f"{{' or '.join(TERMS) or 'any key word of the question'}}).")
'''


class FilesWorld:
    """What the simulated model knows about files and questions in general (see the module docstring)."""

    name = "files"

    def plan(self, question: str) -> TaskPlan | None:
        """Key words from the question, and what to compute: a count, the files, or the best passage."""
        terms = keywords(question)
        if _COUNT.search(question) and (term := main_term(question, terms)):
            return _plan([term], _term_pattern(term), case_flags(term), COMBINE_COUNT,
                         f"Count the lines below that contain {term!r} (case {_case(term)}). "
                         "Reply with the number only.")
        if _WHICH.search(question) and (term := main_term(question, terms)):
            return _plan([term], _term_pattern(term), case_flags(term), COMBINE_WHICH,
                         f"Which files do the lines below come from that mention {term!r}? Each line starts "
                         "with its file path. Reply with the paths, comma-separated, or NONE.")
        pattern = r"(?<!\w)(?:" + "|".join(map(re.escape, terms)) + ")" if terms else r"(?!)"
        return _plan(terms, pattern, "re.IGNORECASE", COMBINE_BEST,
                     f"Which line below best answers the question {question!r}? Key words: {terms!r}. "
                     "Reply with the line as given, or NONE.")

    def answer(self, prompt: str, mistake: bool = False) -> str:
        """The sub-model: count, name the files, or pick the best line, from the prompt's text only."""
        question, text = split_prompt(prompt)
        lines = [line for line in text.split("\n") if line.strip()]
        if found := _ASK_COUNT.match(question):
            term = ast.literal_eval(found["term"])
            flags = 0 if found["case"] == "sensitive" else re.IGNORECASE
            count = sum(bool(re.search(_term_pattern(term), _body(line), flags)) for line in lines)
            return str(count + 1 if mistake else count)
        if found := _ASK_WHICH.match(question):
            term = ast.literal_eval(found["term"]).lower()
            paths = sorted({line.split(":", 1)[0] for line in lines if term in _body(line).lower()})
            return ", ".join(paths[:-1] if mistake and len(paths) > 1 else paths) or NONE
        if found := _ASK_BEST.search(question):
            terms = [t.lower() for t in ast.literal_eval(found["terms"])]
            ranked = sorted(lines, key=lambda line: -sum(t in line.lower() for t in terms))
            ranked = [line for line in ranked if any(t in line.lower() for t in terms)]
            return (ranked[1] if mistake and len(ranked) > 1 else ranked[0]) if ranked else NONE
        return NONE


def keywords(question: str, limit: int = 8) -> list[str]:
    """The words a model would grep for: quoted phrases first, then the words that are not stop words."""
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(question)]
    words = [w for w in _WORD.findall(_QUOTED.sub(" ", question)) if w.lower() not in _STOP
             and (len(w) >= 3 or any(c.isdigit() or c.isupper() for c in w))]
    seen: dict[str, None] = {}
    for word in quoted + words:
        seen.setdefault(word, None)
    return list(seen)[:limit]


def main_term(question: str, terms: list[str]) -> str | None:
    """The one term a count or a which-file question is about: quoted, after a verb, in capitals, or the last."""
    if quoted := _QUOTED.search(question):
        return next(g for g in quoted.groups() if g)
    for found in _VERB.finditer(question):
        if found["term"].lower() not in _STOP:
            return found["term"].rstrip(".")
    capitals = [t for t in terms if t.isupper() and len(t) > 1]
    return capitals[0] if capitals else (terms[-1] if terms else None)


def case_flags(term: str) -> str:
    """A term in capitals (ERROR, TODO) is matched as written; anything else in any case."""
    return "0" if _case(term) == "sensitive" else "re.IGNORECASE"


def _case(term: str) -> str:
    return "sensitive" if term.isupper() and len(term) > 1 else "insensitive"


def _term_pattern(term: str) -> str:
    """The term as grep matches it: anywhere in a line (`zebra` is in `feed_the_zebra`)."""
    return re.escape(term)


def _body(line: str) -> str:
    """A passage line without its `path:line: ` prefix."""
    parts = line.split(": ", 1)
    return parts[1] if len(parts) == 2 else line


def _plan(terms: list[str], pattern: str, flags: str, combine: str, ask: str) -> TaskPlan:
    setup = SETUP.format(terms=terms, pattern=pattern, flags=flags, kept=KEPT_LINES, line_chars=LINE_CHARS,
                         passages=PASSAGES)
    return TaskPlan(
        stages=(Stage(ask=ask, keywords=pattern),),
        combine=combine.format(prefix=SIMULATED_PREFIX).strip(),
        guess=repr(f"{SIMULATED_PREFIX} I did not read the files, so I cannot answer."),
        units="best_passages(ALL, TERMS)",
        setup=setup.strip(),
    )


register_world("files", FilesWorld)
