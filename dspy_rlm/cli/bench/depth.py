"""Issue 12's depth-2 workload, and the scripted OpenAI-compatible server that drives it.

One logical script, written out for three frameworks: `dspy_rlm.RLM` (ChatAdapter fields,
```python fences, SUBMIT/FINAL), `rlms` 0.1.3 (```repl fences, `answer["ready"] = True`) and
`recursive-llm` 0.5.0 (bare code, the same `answer` dict).
The root's step 1 starts one child per item with `rlm_query_batched`; its step 2 adds the
children's values up and submits. Each child's step 1 reads its value from `context` in code;
its step 2 submits the value and `sys.platform`, the platform the child's code ran on ("wasi"
inside eryx, the host's otherwise), so the answer itself shows where every child ran.

The server tells a request's framework, role (root or child) and step from its messages
alone, answers after `latency_s`, and counts what it served. Nothing it says depends on the
data: the children's values reach the answer only through the frameworks' own plumbing.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

CHILDREN = 50
QUERY = "What is the sum of the values of all items?"

# Step k of each script (k from 1); a step past the end repeats the last one.
SCRIPTS: dict[tuple[str, str], list[str]] = {
    ("dspy-rlm", "root"): [
        "lines = context.splitlines()\n"
        "results = rlm_query_batched(['Return the value of the item in `context`.'] * len(lines), contexts=lines)\n"
        "print(len(results), results[:3])",
        "values = [r.split()[0] for r in results]\n"
        "total = sum(int(v) for v in values if v.isdigit())\n"
        "platforms = '+'.join(sorted({r.split()[-1] for r in results if r.split()[0].isdigit()})) or 'none'\n"
        "SUBMIT(answer=f'{total} {platforms} {sum(not v.isdigit() for v in values)}')",
    ],
    ("dspy-rlm", "child"): [
        "import sys\nvalue = int(context.rsplit('value ', 1)[1])\nprint(value, sys.platform)",
        "FINAL(f'{value} {sys.platform}')",
    ],
    ("rlms", "root"): [
        "lines = context.splitlines()\nresults = rlm_query_batched(lines)\nprint(len(results), results[:3])",
        "values = [r.split()[0] for r in results]\n"
        "total = sum(int(v) for v in values if v.isdigit())\n"
        "platforms = '+'.join(sorted({r.split()[-1] for r in results if r.split()[0].isdigit()})) or 'none'\n"
        "answer['content'] = f'{total} {platforms} {sum(not v.isdigit() for v in values)}'\n"
        "answer['ready'] = True",
    ],
    ("rlms", "child"): [
        "import sys\nvalue = int(context.rsplit('value ', 1)[1])\nprint(value, sys.platform)",
        "answer['content'] = f'{value} {sys.platform}'\nanswer['ready'] = True",
    ],
    # recursive-llm takes bare code (no fences); its RestrictedPython REPL refuses `import sys`,
    # which the child reports.
    ("recursive-llm", "root"): [
        "lines = context.splitlines()\n"
        "results = rlm_query_batched(['Return the value of the item in `context`.'] * len(lines), lines)\n"
        "print(len(results), results[:3])",
        "values = [r.split()[0] for r in results]\n"
        "total = sum(int(v) for v in values if v.isdigit())\n"
        "platforms = '+'.join(sorted({r.split()[-1] for r in results if r.split()[0].isdigit()})) or 'none'\n"
        "answer['content'] = f'{total} {platforms} {sum(not v.isdigit() for v in values)}'\n"
        "answer['ready'] = True",
    ],
    ("recursive-llm", "child"): [
        "try:\n    import sys\n    where = sys.platform\nexcept ImportError:\n    where = 'import-refused'\n"
        "value = int(context.rsplit('value ', 1)[1])\nprint(value, where)",
        "answer['content'] = f'{value} {where}'\nanswer['ready'] = True",
    ],
}


def item_value(index: int) -> int:
    """The value of item `index`: four digits, distinct for every item of the workload."""
    return 1000 + (index * 7919) % 9000


def root_context(children: int = CHILDREN) -> str:
    """The root's input: one line per child, e.g. 'item 17: value 4317'."""
    return "\n".join(f"item {i}: value {item_value(i)}" for i in range(children))


def expected_total(children: int = CHILDREN) -> int:
    return sum(item_value(i) for i in range(children))


@dataclass(frozen=True)
class Answer:
    """The root's submission, '<total> <platforms> <failed children>', as a record with its parser."""

    total: int
    platforms: tuple[str, ...]
    failed_children: int

    @classmethod
    def parse(cls, text: str) -> Answer:
        """Read a submission; a ValueError says what did not fit."""
        parts = str(text).split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            raise ValueError(f"expected '<total> <platforms> <failed>', got {str(text)[:200]!r}")
        return cls(int(parts[0]), tuple(parts[1].split("+")), int(parts[2]))


@dataclass(frozen=True)
class Turn:
    """What one request is: which framework asked, for which run (root or child), at which step."""

    framework: str  # "dspy-rlm", "rlms" or "recursive-llm"
    role: str  # "root" or "child"
    step: int


_OURS_STEP = re.compile(r"\[\[ ## iteration ## \]\]\n(\d+)/\d+")
_RLMS_STEP = re.compile(r"^Turn (\d+)/\d+:", re.MULTILINE)
RLMS_SYSTEM = "You are a Recursive Language Model (RLM)"
RECURSIVE_LLM_SYSTEM = "You are a Recursive Language Model. You interact with context through a Python REPL"
_RECURSIVE_LLM_DEPTH = re.compile(r"^Depth: (\d+)\.", re.MULTILINE)


def classify(messages: list[dict[str, Any]]) -> Turn:
    """The turn an OpenAI chat request is; a ValueError names what was not recognised."""
    texts = [(m.get("role"), _text(m.get("content"))) for m in messages]
    system = "\n".join(t for role, t in texts if role in ("system", "developer"))
    users = [t for role, t in texts if role == "user"]
    if not users:
        raise ValueError("no user message in the request")
    if "[[ ## code ## ]]" in system:  # dspy_rlm.RLM through DSPy's ChatAdapter
        last = users[-1]
        step = _OURS_STEP.search(last)
        if step is None:
            raise ValueError("a ChatAdapter request without an `iteration` field: not an RLM step")
        if "Variable: `query`" in last:
            return Turn("dspy-rlm", "root", int(step.group(1)))
        if "Variable: `prompt`" in last:
            return Turn("dspy-rlm", "child", int(step.group(1)))
        raise ValueError("a dspy-rlm step with neither a `query` (root) nor a `prompt` (child) variable")
    if system.startswith(RLMS_SYSTEM):
        steps = [int(m.group(1)) for t in users for m in _RLMS_STEP.finditer(t)]
        if not steps:
            raise ValueError("an rlms request without a 'Turn k/N:' message")
        role = "root" if users[0].startswith("Answer the following:") else "child"
        return Turn("rlms", role, steps[-1])
    if system.startswith(RECURSIVE_LLM_SYSTEM):
        depth = _RECURSIVE_LLM_DEPTH.search(system)
        if depth is None:
            raise ValueError("a recursive-llm request without its 'Depth: n.' line")
        step = 1 + sum(1 for role, _ in texts if role == "assistant")
        return Turn("recursive-llm", "root" if depth.group(1) == "0" else "child", step)
    raise ValueError(f"neither a dspy-rlm, an rlms nor a recursive-llm prompt; system message starts {system[:80]!r}")


def reply(turn: Turn) -> str:
    """The scripted answer to `turn`, in its framework's format."""
    codes = SCRIPTS[(turn.framework, turn.role)]
    code = codes[min(turn.step, len(codes)) - 1]
    if turn.framework == "dspy-rlm":
        return (f"[[ ## reasoning ## ]]\n{turn.role} step {turn.step}\n\n[[ ## code ## ]]\n```python\n{code}\n```"
                "\n\n[[ ## completed ## ]]")
    if turn.framework == "recursive-llm":
        return code
    return f"{turn.role.capitalize()} step {turn.step}.\n```repl\n{code}\n```"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


class DepthServer(ThreadingHTTPServer):
    """The scripted server; `serve_depth` runs one in a background thread."""

    daemon_threads = True
    request_queue_size = 256  # 50 children may connect at once

    def __init__(self, *, port: int = 0, latency_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.latency_s = latency_s
        self.served: Counter[tuple[str, str]] = Counter()  # (framework, role) -> requests
        self.rejected: list[str] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reset(self, latency_s: float | None = None) -> None:
        """Forget the counts (and optionally change the latency) before the next measurement."""
        with self._lock:
            self.served.clear()
            self.rejected.clear()
            if latency_s is not None:
                self.latency_s = latency_s

    def counts(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": sum(self.served.values()), "rejected": len(self.rejected),
                    "by_role": {f"{fw}/{role}": n for (fw, role), n in sorted(self.served.items())},
                    "rejections": list(self.rejected[:3])}

    def record(self, turn: Turn | None, problem: str | None = None) -> None:
        with self._lock:
            if turn is not None:
                self.served[(turn.framework, turn.role)] += 1
            if problem is not None:
                self.rejected.append(problem)


class _Handler(BaseHTTPRequestHandler):
    server: DepthServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet: the counts are the log
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle's algorithm on, the client's delayed ACK
        # held each reply about 40 ms (measured here), a cost no real endpoint on a LAN adds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send(404, {"error": {"message": f"No route {self.path}; use POST /v1/chat/completions"}})
        try:
            turn = classify(body.get("messages") or [])
        except ValueError as problem:
            self.server.record(None, str(problem))
            return self._send(400, {"error": {"message": f"depth bench server: {problem}",
                                              "type": "invalid_request_error"}})
        time.sleep(self.server.latency_s)
        self.server.record(turn)
        text = reply(turn)
        tokens = max(1, len(text) // 4)  # an estimate (about 4 characters a token); nothing here is a real model
        self._send(200, {
            "id": f"chatcmpl-depth-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or "bench",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens, "completion_tokens": tokens, "total_tokens": 2 * tokens},
        })

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def serve_depth(*, port: int = 0, latency_s: float = 0.0) -> Iterator[DepthServer]:
    """Run a `DepthServer` on 127.0.0.1 (port 0: a free one) until the block ends."""
    server = DepthServer(port=port, latency_s=latency_s)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="depth-bench",
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
