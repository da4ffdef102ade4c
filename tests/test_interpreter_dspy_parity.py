"""`EryxInterpreter` against DSPy's own interpreter tests.

Ported from stanfordnlp/dspy `tests/primitives/test_python_interpreter.py` (the tests of
`dspy.PythonInterpreter`), with the Deno-, Pyodide- and JSON-RPC-specific ones left out; the
callback tests are in test_interpreter_dspy_callbacks.py. Each test keeps DSPy's name; where
EryxInterpreter differs on purpose, the line says so (README, "DSPy's code-running modules on this sandbox"):

- a last-line expression that is not a str is printed as a REPL does, so `execute("1 + 1")` returns
  the text "2\\n", where PythonInterpreter returns the value 2 (the JSON of it); a str is returned as is;
- errors carry the traceback of the model's code (and the output printed before it);
- `exit()` / `sys.exit()` are disabled rather than raised as SystemExit;
- a tool returning None gives None (Pyodide turns it into "").
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from collections import namedtuple
from datetime import datetime
from enum import Enum
from typing import NamedTuple

import pytest
from dspy.primitives.code_interpreter import CodeExecutionError, CodeInterpreterError, FinalOutput
from pydantic import BaseModel, ConfigDict

from dspy_rlm import EryxInterpreter

pytestmark = pytest.mark.usefixtures("eryx_factory")


class _Hit(BaseModel):
    document_id: int
    title: str


class _TimestampedHit(_Hit):
    created_at: datetime


class _UnserializableValue:
    pass


class _UnserializableModel(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    value: _UnserializableValue


@pytest.fixture
def interp():
    """Build EryxInterpreters (DSPy's `configure_pooled_interpreter`) that are shut down after the test."""
    made = []

    def build(**kwargs) -> EryxInterpreter:
        made.append(EryxInterpreter(**kwargs))
        return made[-1]

    yield build
    for interpreter in made:
        interpreter.shutdown()


# ------------------------------------------------------------------ execution


def test_execute_simple_code(interp):
    """Printed output is returned as printed, its trailing newline included."""
    assert interp().execute("print('Hello, World!')") == "Hello, World!\n"


def test_import(interp):
    assert interp().execute("import math\nresult = math.sqrt(4)\nresult") == "2.0\n"  # printed, not the value


def test_user_variable_definitions(interp):
    assert interp().execute("result = number + 1\nresult", variables={"number": 4}) == "5\n"


def test_non_finite_float_variables(interp):
    interpreter = interp()
    assert interpreter.execute("1 if x == float('inf') else 0", variables={"x": float("inf")}) == "1\n"
    assert interpreter.execute("1 if x == float('-inf') else 0", variables={"x": float("-inf")}) == "1\n"
    assert interpreter.execute("import math\n1 if math.isnan(x) else 0", variables={"x": float("nan")}) == "1\n"


def test_rejects_python_keywords_as_variable_names(interp):
    interpreter = interp()
    for keyword in ["for", "class", "import", "def", "return", "if", "while"]:
        with pytest.raises(CodeInterpreterError, match="Invalid variable name"):
            interpreter.execute("print(x)", variables={keyword: 42})


def test_failure_syntax_error(interp):
    with pytest.raises(SyntaxError, match="invalid syntax"):
        interp().execute("+++")


def test_failure_zero_division(interp):
    with pytest.raises(CodeExecutionError, match="ZeroDivisionError"):
        interp().execute("1+0/0")


def test_exception_args(interp):
    token = random.randint(1, 10**9)
    with pytest.raises(CodeExecutionError, match=rf"ValueError: {token}"):  # DSPy: "ValueError: [token]"
        interp().execute(f"raise ValueError({token})")


def test_generated_exception_name_cannot_spoof_interpreter_failure(interp):
    interpreter = interp()
    with pytest.raises(CodeExecutionError, match="CodeInterpreterError"):
        interpreter.execute("class CodeInterpreterError(Exception):\n    pass\nraise CodeInterpreterError('generated failure')")
    assert interpreter.execute("2 + 2") == "4\n"


def test_submit_with_list(interp):
    token = random.randint(1, 10**9)
    result = interp()(f"SUBMIT(['The result is', {token}])")
    assert isinstance(result, FinalOutput)
    assert result.output == {"output": ["The result is", token]}


def test_tools_dict_is_copied():
    tools = {"my_tool": lambda: "result"}
    interpreter = EryxInterpreter(tools=tools)
    tools["new_tool"] = lambda: "new"
    assert "new_tool" not in interpreter.tools


@pytest.mark.parametrize(
    ("code", "variables", "expected"),
    [
        ("x", {"x": (1, 2, 3)}, "[1, 2, 3]\n"),  # test_serialize_tuple: tuples become lists
        ("sorted(x)", {"x": {3, 1, 2}}, "[1, 2, 3]\n"),  # test_serialize_set
        ("hit['document_id']", {"hit": _Hit(document_id=7, title="abc")}, "7\n"),  # test_serialize_pydantic_variable
        ("(data['hit']['document_id'], data['hit']['title'])", {"data": {"hit": _Hit(document_id=11, title="nested")}},
         "(11, 'nested')\n"),  # test_serialize_pydantic_nested_in_dict
        ("sum(h['document_id'] for h in hits)", {"hits": [_Hit(document_id=1, title="a"), _Hit(document_id=2, title="b")]},
         "3\n"),  # test_serialize_pydantic_in_list_variable
    ],
)
def test_serialize_variables(interp, code, variables, expected):
    assert interp().execute(code, variables=variables) == expected


def test_serialize_set_mixed_types(interp):
    interpreter = interp()
    assert interpreter.execute("type(x).__name__", variables={"x": {1, "a"}}) == "list"
    assert interpreter.execute("sorted(map(str, x))") == "['1', 'a']\n"


def test_json_mode_values_cross_the_host_to_sandbox_path(interp):
    """Bare datetimes and enums inside a variable arrive as their JSON values."""

    class Color(Enum):
        RED = "red"

    value = {"t": datetime(2026, 1, 1), "c": Color.RED}
    assert interp().execute("v", variables={"v": value}) == "{'t': '2026-01-01T00:00:00', 'c': 'red'}\n"


def test_unserializable_pydantic_variable_raises_code_interpreter_error(interp):
    """Invalid host variables fail before the sandbox starts."""
    interpreter = interp()
    with pytest.raises(CodeInterpreterError, match="_UnserializableModel") as caught:
        interpreter.execute("value", variables={"value": _UnserializableModel(value=_UnserializableValue())})
    assert type(caught.value) is CodeInterpreterError
    assert interpreter._sandbox is None


def test_nested_sets_and_tuples(interp):
    data = {"tags": {1, 2, 3}, "coords": (10, 20), "nested": [{"inner_set": {"a", "b"}}]}
    code = "(data['tags'], data['coords'], sorted(data['nested'][0]['inner_set']))"
    assert interp().execute(code, variables={"data": data}) == "([1, 2, 3], [10, 20], ['a', 'b'])\n"


def test_large_variable_content_integrity(interp):
    pattern = "ABCDEFGHIJ" * 100
    large = pattern * 1100  # over a megabyte
    interpreter = interp()
    assert interpreter.execute("len(data)", variables={"data": large}) == f"{len(large)}\n"
    assert interpreter.execute("print(data[:100] + '|' + data[-100:])", variables={"data": large}) == \
        f"{large[:100]}|{large[-100:]}\n"


def test_mixed_small_and_large_variables(interp):
    small, large = "hello", "x" * 200_000
    code = "f'{small} has {len(small)} chars, large has {len(large)} chars'"
    assert interp().execute(code, variables={"small": small, "large": large}) == \
        f"{small} has 5 chars, large has {len(large)} chars"


@pytest.mark.parametrize("code, error_type", [
    ("raise KeyboardInterrupt('stop')", "KeyboardInterrupt"),
    ("class ExitSignal(SystemExit): pass\nraise ExitSignal(0)", "ExitSignal"),
    ("class InterruptSignal(KeyboardInterrupt): pass\nraise InterruptSignal()", "InterruptSignal"),
    ("import sys\nsys.exit(0)", r"exit\(\) is disabled"),  # DSPy: SystemExit
])
def test_base_exceptions_do_not_desync_interpreter(interp, code, error_type):
    interpreter = interp()
    with pytest.raises(CodeExecutionError, match=error_type):
        interpreter.execute(code)
    assert interpreter.execute("print('still alive')") == "still alive\n"


def test_execution_instructions_are_class_metadata():
    interpreter = EryxInterpreter()
    assert interpreter.execution_instructions == EryxInterpreter.execution_instructions
    assert "WebAssembly" in interpreter.execution_instructions and "standard library" in interpreter.execution_instructions


# ------------------------------------------------------------------ tools


def test_tool_with_typed_signature(interp):
    def my_tool(query: str, limit: int = 10) -> str:
        return f"searched '{query}' with limit {limit}"

    assert interp(tools={"my_tool": my_tool}).execute('print(my_tool(query="test", limit=5))') == \
        "searched 'test' with limit 5\n"


def test_tool_none_type_and_nested_json_default(interp):
    def tool(value: type(None) = None, items: list = [None]):  # noqa: B006
        return [value, items]

    assert interp(tools={"tool": tool}).execute("tool()") == "[None, [None]]\n"


def test_tool_positional_keyword_and_default_args(interp):
    """DSPy's test_tool_positional_args, test_tool_keyword_args, test_tool_default_args, test_tool_all_positional_args."""

    def search(query: str, limit: int = 10) -> str:
        return f"query={query}, limit={limit}"

    def add(a: int, b: int, c: int) -> str:
        return f"{a + b + c}"

    interpreter = interp(tools={"search": search, "add": add})
    assert interpreter.execute('print(search("hello"))') == "query=hello, limit=10\n"
    assert interpreter.execute('print(search(query="hello", limit=5))') == "query=hello, limit=5\n"
    assert interpreter.execute('print(search("hello", 5))') == "query=hello, limit=5\n"
    assert interpreter.execute("print(add(1, 2, 3), add(10, 20, c=30))") == "6 60\n"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_tool_error_surfaces_as_runtime_error(interp, asynchronous):
    """DSPy's test_tool_error_surfaces_as_runtime_error and test_tool_async_def_raises_propagates."""

    def failing_tool(x: int) -> str:
        raise ValueError(f"bad value: {x}")

    async def failing_async(x: int) -> str:
        await asyncio.sleep(0)
        raise ValueError(f"boom:{x}")

    interpreter = interp(tools={"failing": failing_async if asynchronous else failing_tool})
    result = interpreter.execute("try:\n    failing(42)\n    output = 'no error'\nexcept RuntimeError as e:\n"
                                 "    output = str(e)\nprint(output)")
    assert "ValueError" in result and ("boom:42" if asynchronous else "bad value: 42") in result


def test_tool_async_def_function(interp):
    async def slow_search(query: str) -> str:
        await asyncio.sleep(0)
        return f"answer:{query}"

    assert interp(tools={"slow_search": slow_search}).execute("print(slow_search(query='hello'))") == "answer:hello\n"


class _Custom:
    def __str__(self) -> str:
        return "custom-object"

    def __repr__(self) -> str:
        return "<_Custom repr>"


@dataclasses.dataclass
class _BBox:
    x0: float
    top: float
    x1: float
    bottom: float


@dataclasses.dataclass
class _PageTable:
    index: int
    bbox: _BBox
    strategy: str


@dataclasses.dataclass
class _Holder:
    name: str
    lock: threading.Lock


class _TypedPoint(NamedTuple):
    x: float
    y: float
    label: str


_Point = namedtuple("_Point", ["x", "y"])


@pytest.mark.parametrize(
    ("result", "code", "expected"),
    [
        (4, "print(type(v).__name__, v + 1)", "int 5"),  # test_tool_returning_int
        (0.95, "print(type(v).__name__, v * 2)", "float 1.9"),  # test_tool_returning_float
        (True, "print(type(v).__name__, v and 'yes')", "bool yes"),  # test_tool_returning_bool
        (None, "print(repr(v))", "None"),  # test_tool_returning_none (Pyodide: '')
        ([1, 2, 3], "print(type(v).__name__, v[0] + 10)", "list 11"),  # test_tool_returning_list
        ({"count": 4, "label": "pages"}, "print(type(v).__name__, v['count'] + 1)", "dict 5"),  # ..._dict
        (_Custom(), "print(type(v).__name__, v)", "str custom-object"),  # ..._non_json_serializable: str(), not repr()
        (float("nan"), "print(type(v).__name__, v)", "str nan"),  # ..._nan_falls_back_to_string
        (float("inf"), "print(type(v).__name__, v)", "str inf"),
        (_TimestampedHit(document_id=42, title="example", created_at=datetime(2026, 5, 14, 8, 7, 27)),
         "print(v['document_id'], v['title'], v['created_at'])", "42 example 2026-05-14T08:07:27"),  # pydantic
        ([_Hit(document_id=1, title="a"), _Hit(document_id=2, title="b")],
         "print(sum(h['document_id'] for h in v))", "3"),  # test_tool_returns_list_of_pydantic_models
        (_BBox(x0=18.2, top=108.0, x1=554.4, bottom=748.8), "print(v['x0'], v['bottom'])", "18.2 748.8"),  # dataclass
        (_PageTable(index=0, bbox=_BBox(1.0, 2.0, 3.0, 4.0), strategy="lines"),
         "print(v['bbox']['x0'], v['strategy'])", "1.0 lines"),  # test_tool_returns_nested_dataclass
        ([_PageTable(0, _BBox(1.0, 2.0, 3.0, 4.0), "lines"), _PageTable(1, _BBox(5.0, 6.0, 7.0, 8.0), "text")],
         "print([t['index'] for t in v])", "[0, 1]"),  # test_tool_returns_list_of_dataclasses
        (_TypedPoint(x=10.5, y=20.3, label="origin"), "print(v['x'], v['label'])", "10.5 origin"),  # typing.NamedTuple
        (_Point(x=3.0, y=4.0), "print(v['x'] + v['y'])", "7.0"),  # collections.namedtuple
        (_Holder(name="test", lock=threading.Lock()), "print(type(v).__name__)", "str"),  # uncopyable field: str()
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else None,
)
def test_tool_results_are_converted_as_dspy_converts_them(interp, result, code, expected):
    interpreter = interp(tools={"get": lambda: result})
    assert interpreter.execute(f"v = get()\n{code}") == f"{expected}\n"


def test_tool_returning_unserializable_pydantic_model_raises_execution_error(interp):
    interpreter = interp(tools={"get_value": lambda: _UnserializableModel(value=_UnserializableValue())})
    with pytest.raises(CodeExecutionError, match="Unable to serialize _UnserializableModel as JSON"):
        interpreter.execute("get_value()")


def test_tool_cannot_reenter_same_interpreter(interp):
    holder = {}
    interpreter = interp(tools={"nested_execute": lambda: holder["interpreter"].execute("'nested'")})
    holder["interpreter"] = interpreter
    with pytest.raises(CodeExecutionError, match="cannot execute code from inside one of its own tools"):
        interpreter.execute("nested_execute()")
    assert interpreter.execute("40 + 2") == "42\n"


# ------------------------------------------------------------------ SUBMIT


ANSWER_CONFIDENCE = [{"name": "answer", "type": "str"}, {"name": "confidence", "type": "float"}]


@pytest.mark.parametrize("code", ['SUBMIT(answer="the answer", confidence=0.95)', 'SUBMIT("the answer", 0.95)'])
def test_submit_with_typed_signature_keyword_or_positional(interp, code):
    result = interp(output_fields=ANSWER_CONFIDENCE).execute(code)
    assert isinstance(result, FinalOutput) and result.output == {"answer": "the answer", "confidence": 0.95}


def test_submit_multi_output(interp):
    fields = [{"name": "answer", "type": "str"}, {"name": "score", "type": "int"}]
    result = interp(output_fields=fields).execute('a = "my answer"\ns = 42\nSUBMIT(a, s)')
    assert result == FinalOutput({"answer": "my answer", "score": 42})


def test_submit_wrong_arg_count(interp):
    # DSPy: "missing 1 required positional argument"; here the message names the missing field.
    with pytest.raises(CodeInterpreterError, match=r"SUBMIT\(\) missing required argument.*confidence"):
        interp(output_fields=ANSWER_CONFIDENCE).execute("x = 1; SUBMIT(x)")


@pytest.mark.parametrize(("field", "code", "expected"), [
    ({"name": "nothing", "type": "NoneType"}, "SUBMIT(nothing=None)", {"nothing": None}),
    ({"name": "FinalOutput", "type": "str"}, "SUBMIT(FinalOutput='ok')", {"FinalOutput": "ok"}),
])
def test_submit_valid_runtime_edge_cases(interp, field, code, expected):
    assert interp(output_fields=[field]).execute(code) == FinalOutput(expected)
