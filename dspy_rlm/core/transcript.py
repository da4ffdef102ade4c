"""The REPL transcript: its text format, the writers of that text, and its parser.

The root model never sees an input's value, only `variables_info` (name,
type, length and a short preview) and the history of earlier steps. It
answers with reasoning and a code block, which `extract_code` pulls out.

This module is the one home of the format. Each piece of text is a template
constant below, used by its writer (`describe_value`, `format_variables`,
`Step.format` / `format_history`, `format_iteration`) and, turned into a
regex by `_pattern`, by its parser (`parse_variables`, `inputs_section`,
`parse_history`, `parse_iteration`). Whatever reads the prompt (the simulated
root model) uses these parsers, so a format change is made here once, and the
round-trip tests in `tests/test_transcript.py` catch drift. Every text is bounded
(`dspy_rlm.core.bounds`): names, reasoning, code and outputs are cut with a marker.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import pydantic

from dspy_rlm import settings
from dspy_rlm.core.bounds import CUT as _CUT, CUT_PREFIX as _CUT_PREFIX, CUT_SUFFIX as _CUT_SUFFIX
from dspy_rlm.core.bounds import NUMBER as _NUMBER, cut_name, recut
from dspy_rlm.core.records import RECORD_ERROR_CHARS, ChildRecord, SubQueryRecord  # noqa: F401  (re-exported)
from dspy_rlm.errors import CodeProblem
from dspy_rlm.library import INDEX_HEADING
from dspy_rlm.sandbox import ErrorKind, TextFile, truncate_middle

PREVIEW_CHARS = 300
MAX_LISTED_VARIABLES = 100  # names of the model's own variables shown in variables_info
DESCRIPTION_CHARS = 1_000  # of an input's description in variables_info
_KEPT_TEXTS = ("reasoning", "code", "output")  # a Step's texts, each kept up to settings.TRAJECTORY_TEXT_CHARS
_PYTHON_FENCES = {"", "python", "py", "python3", "py3"}
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)

# ---- the format: `variables_info` (one entry per input, then the created names)
VARIABLE_LINE = "Variable: `{name}` (access it in your code)"
TYPE_LINE = "Type: {type_name}"
DESCRIPTION_LINE = "Description: {description}"
LENGTH_LINE = "Length: {length:,} {unit}"
PREVIEW_OPEN, PREVIEW_CLOSE = "Preview:\n```\n", "\n```"
ENTRY_SEPARATOR = "\n\n"
CREATED_LINE = "Variables you created earlier (still in the REPL): {names}"
MORE_NAMES = ", ... and {more:,} more"
# ---- the format: `repl_history` (one block per step)
NO_HISTORY = "You have not run any code yet."
STEP_HEADER = "=== Step {iteration} ===\n"
REASONING_LINE = "Reasoning: {reasoning}\n"
CODE_OPEN, CODE_CLOSE = "Code:\n```python\n", "\n```\n"
OUTPUT_HEADER = "Output ({chars:,} chars):\n"
STEP_SEPARATOR = "\n\n"
# ---- the format: `iteration`
ITERATION_LINE = "{iteration}/{max_iters}"
CALLS_LEFT = "; sub-model calls left: {calls_left}"
# The limits of this RLM, stated each call rather than in the (saved, tunable) instructions.
SIZE_LIMITS = ("\nSize limits: a sub-model prompt may hold {max_prompt_chars:,} characters; a step's output is "
               "shown up to {max_output_chars:,} characters.")


def _pattern(template: str, **groups: str) -> str:
    """A regex for `template`: its literal text escaped, each `{field}` a named group."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(f"(?P<{name}>{groups[name]})")
    return "".join(parts)


_ENTRY = re.compile(
    # An entry starts the text or follows the previous entry's closed preview.
    rf"(?:\A|(?<={re.escape(PREVIEW_CLOSE + ENTRY_SEPARATOR)}))"
    + _pattern(VARIABLE_LINE, name=r"\w+") + "\n" + _pattern(TYPE_LINE, type_name=r"[^\n]*") + "\n"
    + "(?:" + _pattern(DESCRIPTION_LINE, description=r".*?") + "\n)?"
    + "(?:" + _pattern(LENGTH_LINE, length=_NUMBER, unit="characters|items") + "\n)?"
    + re.escape(PREVIEW_OPEN), re.DOTALL)
_CREATED = re.compile(rf"(?:\A|(?<={re.escape(ENTRY_SEPARATOR)}))" + _pattern(CREATED_LINE, names=r"[^\n]*"))
_MORE = re.compile(_pattern(MORE_NAMES, more=_NUMBER) + r"\Z")
_STEP_AT = re.compile(_pattern(STEP_HEADER, iteration=r"\d+"))
_NEXT_STEP = re.compile(re.escape(STEP_SEPARATOR) + _pattern(STEP_HEADER, iteration=r"\d+"))
# A reader that strips the text (ScriptedRequest.field does) drops the newline after an empty last output.
_OUTPUT_AT = re.compile(re.escape(CODE_CLOSE) + _pattern(OUTPUT_HEADER.removesuffix("\n"), chars=_NUMBER)
                        + r"(?:\n|\Z)")
_ITERATION = re.compile(_pattern(ITERATION_LINE, iteration=r"\d+", max_iters=r"\d+")
                        + "(?:" + _pattern(CALLS_LEFT, calls_left=r"\d+") + ")?"
                        + "(?:" + _pattern(SIZE_LIMITS, max_prompt_chars=_NUMBER, max_output_chars=_NUMBER) + ")?")


StepErrorKind = ErrorKind | Literal["no_code", "generation", "output"]
"""Why a step failed: the sandbox's kinds, or no code in the answer (`no_code`), an answer that
could not be parsed or came too late (`generation`), a submission that did not fit (`output`)."""


class Step(pydantic.BaseModel):
    """One REPL iteration, as kept in the trajectory; it writes its own `repl_history` block."""

    iteration: int
    reasoning: str = ""
    code: str = ""
    output: str = ""
    error: StepErrorKind | None = None
    seconds: float = 0.0
    sub_queries: list[SubQueryRecord] = pydantic.Field(default_factory=list)
    children: list[ChildRecord] = pydantic.Field(default_factory=list)  # child runs (rlm_query), in order
    approvals: list[dict[str, Any]] = pydantic.Field(default_factory=list)  # side-effect tool decisions
    _full_chars: dict[str, int] = pydantic.PrivateAttr(default_factory=dict)  # of the texts cut on the way in

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _kept(cls, data: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Step:
        """Keep each text up to `settings.TRAJECTORY_TEXT_CHARS` (a 50 MB completion is not kept
        whole), remembering its full length for the markers of the prompt."""
        full: dict[str, int] = {}
        if isinstance(data, dict):
            data, limit = dict(data), settings.TRAJECTORY_TEXT_CHARS
            for key in _KEPT_TEXTS:
                if isinstance(text := data.get(key), str) and len(text) > limit:
                    full[key], data[key] = len(text), truncate_middle(text, limit)
        step = handler(data)
        step._full_chars.update(full)
        return step

    def format(self, max_output_chars: int, reasoning_chars: int = settings.HISTORY_REASONING_CHARS,
               code_chars: int = settings.HISTORY_CODE_CHARS) -> str:
        """This step's block: header, reasoning (if any), code, and output, each cut to its limit."""
        full = self._full_chars
        reasoning = self.reasoning and REASONING_LINE.format(
            reasoning=recut(self.reasoning, reasoning_chars, full.get("reasoning", len(self.reasoning))))
        code = recut(self.code, code_chars, full.get("code", len(self.code)))
        output_chars = full.get("output", len(self.output))
        return (STEP_HEADER.format(iteration=self.iteration) + reasoning + CODE_OPEN + code + CODE_CLOSE
                + OUTPUT_HEADER.format(chars=output_chars) + recut(self.output, max_output_chars, output_chars))


@dataclass(frozen=True)
class VariableInfo:
    """One variable as `variables_info` names it."""

    name: str
    type_name: str = ""  # as written, e.g. "str" or "dict (from Answer)"; "" for created variables
    length: int | None = None  # characters of a str, items of a collection; None when not shown
    is_input: bool = True  # False for the "Variables you created earlier" list
    description: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    """One step as `repl_history` shows it."""

    iteration: int
    reasoning: str
    code: str
    output: str  # as shown: possibly cut in the middle by `truncate_middle`
    output_chars: int  # the length of the whole output, from the block's header
    truncated: bool = False


class IterationInfo(NamedTuple):
    """The `iteration` field: this step's number, the most steps, and the sub-model calls left."""

    iteration: int
    max_iters: int
    calls_left: int | None  # None when the text does not say
    max_prompt_chars: int | None = None  # the size limits, None when the text does not say
    max_output_chars: int | None = None


def describe_value(name: str, value: Any, desc: str = "") -> str:
    """One variable's entry in `variables_info`, without ever printing the whole value."""
    if isinstance(value, TextFile):  # a str the guest loads from a file: described as one, read only at its ends
        preview = (value.head(value.chars) if value.chars <= PREVIEW_CHARS
                   else f"{value.head(PREVIEW_CHARS // 2)} ... {value.tail(PREVIEW_CHARS // 2)}")
    else:
        preview = _head_tail(value if isinstance(value, str) else _preview_json(value), PREVIEW_CHARS)
    lines = [VARIABLE_LINE.format(name=name), TYPE_LINE.format(type_name=cut_name(_type_name(value)))]
    if desc:
        lines.append(DESCRIPTION_LINE.format(description=truncate_middle(desc, DESCRIPTION_CHARS)))
    if isinstance(value, (str, list, dict, tuple, TextFile)):
        unit = "characters" if isinstance(value, (str, TextFile)) else "items"
        lines.append(LENGTH_LINE.format(length=len(value), unit=unit))
    lines.append(PREVIEW_OPEN + preview + PREVIEW_CLOSE)
    return "\n".join(lines)


def _type_name(value: Any) -> str:
    if isinstance(value, pydantic.BaseModel):
        return f"dict (from {type(value).__name__})"
    return "str" if isinstance(value, TextFile) else type(value).__name__


def _preview_json(value: Any) -> str:
    # Only the preview is rendered, so a huge list costs a slice, not a full dump.
    if isinstance(value, (list, tuple)) and len(value) > 20:
        value = list(value[:10])
    if isinstance(value, pydantic.BaseModel):
        value = value.model_dump(mode="json")
    limit, text = PREVIEW_CHARS * 4, ""
    try:
        # Encoded lazily, as `json.dumps` would write it, and only as far as the preview reads.
        for chunk in json.JSONEncoder(default=str, ensure_ascii=False).iterencode(value):
            text += chunk
            if len(text) >= limit:
                break
        return text[:limit]
    except (TypeError, ValueError):
        return repr(value)[:limit]


def _head_tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ... {text[-half:]}"


def format_variables(inputs: dict[str, Any], descs: dict[str, str], extra: list[str] | None = None,
                     library: str = "") -> str:
    """The `variables_info` text: every input, plus names the model created earlier (each cut by `cut_name`),
    then `library`, the code library's section (`CodeLibrary.prompt_section`), if any."""
    parts = [describe_value(name, value, descs.get(name, "")) for name, value in inputs.items()]
    if extra:
        # Capped in number and length: thousands of globals, or long names, must not blow up every later prompt.
        listed = ", ".join(cut_name(name) for name in extra[:MAX_LISTED_VARIABLES])
        if len(extra) > MAX_LISTED_VARIABLES:
            listed += MORE_NAMES.format(more=len(extra) - MAX_LISTED_VARIABLES)
        parts.append(CREATED_LINE.format(names=listed))
    if library:
        parts.append(library)
    return ENTRY_SEPARATOR.join(parts)


def parse_variables(text: str) -> list[VariableInfo]:
    """The variables a `variables_info` text names: the inputs in order, then the listed created names
    (a long name as shown: cut by `cut_name`)."""
    found = [VariableInfo(m["name"], m["type_name"], _number(m["length"]), True, m["description"] or "")
             for m in _ENTRY.finditer(text)]
    if (created := _created(text)) is not None:
        names = _MORE.sub("", created["names"])  # the names past the cap are not shown, only counted
        found += [VariableInfo(name, is_input=False) for name in names.split(", ") if name]
    return found


def inputs_section(text: str) -> str:
    """The part of a `variables_info` text that describes the inputs: all before the created-names line.

    It keeps the blank line that precedes that line, so it is the same text the
    simulated model has always keyed its draws on."""
    created = _created(text)
    text = text[: created.start()] if created is not None else text
    library = text.find(ENTRY_SEPARATOR + INDEX_HEADING)  # the library's section, last: the inputs end before it
    return text[:library] if library >= 0 else text


def _created(text: str) -> re.Match[str] | None:
    # The created list is the last part; the last match, in case a preview quotes the line.
    matches = list(_CREATED.finditer(text))
    return matches[-1] if matches else None


def format_history(steps: list[Step], max_output_chars: int, reasoning_chars: int = settings.HISTORY_REASONING_CHARS,
                   code_chars: int = settings.HISTORY_CODE_CHARS) -> str:
    """The `repl_history` text: each step's reasoning, code and output, each cut in the middle to its limit."""
    if not steps:
        return NO_HISTORY
    return STEP_SEPARATOR.join(step.format(max_output_chars, reasoning_chars, code_chars) for step in steps)


def parse_history(text: str) -> list[HistoryEntry]:
    """The steps a `repl_history` text shows, in order; [] for `NO_HISTORY` or no steps.

    A block's output is delimited by the length its header gives (and the cut
    marker, if it was truncated), so outputs may hold anything, even step headers."""
    entries: list[HistoryEntry] = []
    header = _STEP_AT.match(text)
    while header is not None:
        entry, end = _parse_step(text, header)
        entries.append(entry)
        header = _STEP_AT.match(text, end + len(STEP_SEPARATOR)) if _NEXT_STEP.match(text, end) else None
    return entries


def _parse_step(text: str, header: re.Match[str]) -> tuple[HistoryEntry, int]:
    """One step's entry, and where its block ends."""
    iteration, start = int(header["iteration"]), header.end()
    output_header = _OUTPUT_AT.search(text, start)
    if output_header is None:  # not a block this module wrote: keep its text as the output
        end = _next_step_or_end(text, start)
        return HistoryEntry(iteration, "", "", text[start:end], end - start), end
    # Code never holds a fence (extract_code stops at the first), so the last code
    # opening before the output header is the real one, whatever the reasoning says.
    code_start = text.rfind(CODE_OPEN, start, output_header.start())
    if code_start < 0:
        reasoning, code = _reasoning(text[start:output_header.start()]), ""
    else:
        reasoning, code = _reasoning(text[start:code_start]), text[code_start + len(CODE_OPEN):output_header.start()]
    chars, out_start = _int(output_header["chars"]), output_header.end()
    end, truncated = _output_end(text, out_start, chars)
    return HistoryEntry(iteration, reasoning, code, text[out_start:end], chars, truncated), end


def _reasoning(prefix: str) -> str:
    head, tail = REASONING_LINE.split("{reasoning}")
    if prefix.startswith(head) and prefix.endswith(tail):
        return prefix[len(head): len(prefix) - len(tail)]
    return prefix.strip()


def _output_end(text: str, start: int, chars: int) -> tuple[int, bool]:
    """Where an output of `chars` characters, shown from `start`, ends; and whether it was cut."""
    ends = []
    # A cut output is its kept head and tail around one marker, so the marker lies in this span.
    limit = start + chars + len(_CUT_PREFIX + _CUT_SUFFIX) + 32
    for cut in _CUT.finditer(text, start, limit):
        kept = chars - _int(cut["cut"])
        if kept >= 0 and cut.end() <= start + kept + len(cut[0]):
            ends.append((start + kept + len(cut[0]), True))
    # A marker that adds up is surer evidence than a length that happens to reach the end of the text.
    ends.append((start + chars, False))
    for end, truncated in ends:
        if _ends_block(text, end):
            return end, truncated
    for end, truncated in ends:
        # A reader may have stripped the text's trailing whitespace: the last output runs to the end.
        if end > len(text):
            return len(text), truncated
    return _next_step_or_end(text, start), False


def _ends_block(text: str, end: int) -> bool:
    return end == len(text) or _NEXT_STEP.match(text, end) is not None


def _next_step_or_end(text: str, start: int) -> int:
    found = _NEXT_STEP.search(text, start)
    return found.start() if found else len(text)


def format_iteration(iteration: int, max_iters: int, calls_left: int, *, max_prompt_chars: int | None = None,
                     max_output_chars: int | None = None) -> str:
    """The `iteration` text: this step's number of the most, the sub-model calls left, and the size limits."""
    text = ITERATION_LINE.format(iteration=iteration, max_iters=max_iters) + CALLS_LEFT.format(calls_left=calls_left)
    if max_prompt_chars is not None and max_output_chars is not None:
        text += SIZE_LIMITS.format(max_prompt_chars=max_prompt_chars, max_output_chars=max_output_chars)
    return text


def parse_iteration(text: str) -> IterationInfo | None:
    """The numbers of an `iteration` text, or None if it has none; `calls_left` is None when not given."""
    found = _ITERATION.search(text)
    if found is None:
        return None
    return IterationInfo(int(found["iteration"]), int(found["max_iters"]), _number(found["calls_left"]),
                         _number(found["max_prompt_chars"]), _number(found["max_output_chars"]))


def _number(text: str | None) -> int | None:
    return _int(text) if text else None


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def extract_code(text: str | None) -> str:
    """Pull the Python code out of the model's `code` field.

    Raises CodeProblem when there is no code, the block is empty, or the fence
    names another language; the message is shown to the model as the step's output.
    """
    if text is None or not text.strip():
        raise CodeProblem("Your answer had no code. Write the next step as Python in a ```python block.")
    if "```" not in text:
        return text.strip()
    match = _FENCE.search(text)
    if match is None:
        return text.replace("```", "").strip()
    language, body = match.group(1).lower(), match.group(2).strip()
    if language not in _PYTHON_FENCES:
        raise CodeProblem(
            f"Your code block is marked ```{cut_name(language)}, but only Python runs here. "
            "Rewrite the step as Python in a ```python block."
        )
    if not body:
        raise CodeProblem("Your code block was empty. Write the next step as Python in a ```python block.")
    return body
