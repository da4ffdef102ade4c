"""Recorded calls: what a library function was really called with, and what it returned.

While a library records (`CodeLibrary.recording(recorder)`), each of its functions is
wrapped in the guest by `wrapper_code`: after the real call, the wrapper sends one JSON
record (function, args, kwargs, result) to the host function `RECORD_FUNCTION`, which the
`CallRecorder` collects. Records that are not JSON-able or too large are skipped.

The records of a function become its regression tests, `tests/<name>.json`: a JSON list
of `{"args": [...], "kwargs": {...}, "result": ...}`, written and read here only, with
sorted keys and a fixed indent so a regenerated file is byte-identical.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dspy_rlm.errors import LibraryError

RECORD_FUNCTION = "_dspy_rlm_library_record"
ORIGINAL_PREFIX = "_dspy_rlm_original_"  # a recorded function's own def, under the wrapper
MAX_RECORD_CHARS = 60_000  # a call whose record is larger (a whole haystack) is not kept as a test
TESTS_PER_FUNCTION = 3


@dataclass(frozen=True)
class RecordedCall:
    """One real call of a library function."""

    function: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    result: Any = None

    def as_test(self) -> dict[str, Any]:
        return {"args": list(self.args), "kwargs": dict(sorted(self.kwargs.items())), "result": self.result}

    @property
    def size(self) -> int:
        return len(json.dumps(self.as_test(), sort_keys=True))


class CallRecorder:
    """The host side of recording: a callable the guest wrapper sends records to (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[RecordedCall] = []

    def __call__(self, record: str) -> None:
        data = json.loads(record)
        call = RecordedCall(data["function"], tuple(data["args"]), dict(data["kwargs"]), data["result"])
        with self._lock:
            self._calls.append(call)

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for call in self.calls:
            counted[call.function] = counted.get(call.function, 0) + 1
        return counted


def wrapper_code(names: Iterable[str]) -> str:
    """Guest code that wraps each named function so its calls are recorded (see the module docstring)."""
    lines = [
        "def _dspy_rlm_recorded(_name, _function):",
        "    import functools, inspect, json",
        "    @functools.wraps(_function)",
        "    async def _recorded(*args, **kwargs):",
        "        try:  # the arguments as they came in: the function may change them",
        "            arguments = json.dumps({'args': list(args), 'kwargs': kwargs})",
        "        except (TypeError, ValueError):",
        "            arguments = None",
        "        result = _function(*args, **kwargs)",
        "        if inspect.isawaitable(result):",
        "            result = await result",
        "        try:",
        "            record = None if arguments is None else json.dumps({'function': _name, **json.loads(arguments), 'result': result})",
        "        except (TypeError, ValueError):",
        "            record = None",
        f"        if record is not None and len(record) <= {MAX_RECORD_CHARS}:",
        f"            await {RECORD_FUNCTION}(record)",
        "        return result",
        "    return _recorded",
    ]
    lines += [f"{name} = _dspy_rlm_recorded({name!r}, {ORIGINAL_PREFIX}{name})" for name in names]
    return "\n".join(lines) + "\n"


def chosen_tests(calls: Iterable[RecordedCall], per_function: int = TESTS_PER_FUNCTION) -> dict[str, list[RecordedCall]]:
    """Up to `per_function` distinct calls per function, smallest first (ties: by their JSON), so the
    choice does not depend on the order the threads recorded them in."""
    distinct: dict[str, dict[str, RecordedCall]] = {}
    for call in calls:
        key = json.dumps(call.as_test(), sort_keys=True)
        distinct.setdefault(call.function, {})[key] = call
    return {name: [found[key] for key in sorted(found, key=lambda k: (len(k), k))[:per_function]]
            for name, found in sorted(distinct.items())}


def write_tests(calls: list[RecordedCall]) -> str:
    """The text of a function's tests file."""
    return json.dumps([call.as_test() for call in calls], indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_tests(text: str, function: str, where: str) -> list[RecordedCall]:
    """The recorded calls of a tests file; a malformed file is a `LibraryError` naming it."""
    try:
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("not a list")
        return [RecordedCall(function, tuple(item["args"]), dict(item["kwargs"]), item["result"]) for item in data]
    except (ValueError, KeyError, TypeError) as error:
        raise LibraryError(f"{where}: not a tests file ({error}); it must be a JSON list of "
                           '{"args": [...], "kwargs": {...}, "result": ...}; regenerate it or fix it') from None
