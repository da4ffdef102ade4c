"""A local OpenAI-compatible chat-completions server backed by the simulated model.

`dspy.LM("openai/<name>", api_base=server.base_url, api_key="anything")` then
runs DSPy's real client path (request building, HTTP, retries, parsing)
against `SimulatedLM`. Routes: `POST /v1/chat/completions` (with `"stream": true`, the
answer comes as server-sent `chat.completion.chunk`s, a word each), `GET /v1/models`.
It binds to 127.0.0.1 only. **Its answers are a simulated model's.**

Faults, for testing clients: a request header `X-Sim-Fault: <kind>` (one
request), a schedule `faults=[...]` consumed one request at a time (None means
no fault), or `fault_rate` (a seeded draw per request, of the first five kinds). Kinds:

- `429`: HTTP 429 with a `Retry-After` header (`retry_after` seconds);
- `500`: HTTP 500;
- `slow`: a normal answer after `slow_seconds`;
- `malformed`: HTTP 200 with a body that is not JSON;
- `empty`: HTTP 200 with an empty completion;
- `401`: HTTP 401 whose message echoes the request's `Authorization` header, as some
  endpoints do (for testing that keys are scrubbed from error text).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Iterator

from dspy.lm15 import Config, Message, Request

from dspy_rlm.lms.scripted import stream_pieces
from dspy_rlm.lms.simulated.lm import SIMULATED_LABEL, SimulatedLM

RANDOM_FAULTS = ("429", "500", "slow", "malformed", "empty")  # what `fault_rate` draws from: no 401
FAULTS = (*RANDOM_FAULTS, "401")


@dataclass(frozen=True)
class Served:
    """One request the server handled (for tests and logs)."""

    path: str
    fault: str | None
    status: int


class SimulatedServer(ThreadingHTTPServer):
    """The HTTP server; use `serve_simulated` to run one in a background thread."""

    daemon_threads = True

    def __init__(self, lm: SimulatedLM, *, port: int = 0, faults: Iterable[str | None] = (), fault_rate: float = 0.0,
                 retry_after: float = 1.0, slow_seconds: float = 2.0, seed: int = 0):
        for fault in faults:
            _check_fault(fault)
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
        super().__init__(("127.0.0.1", port), _Handler)
        self.lm = lm
        self.schedule = deque(faults)
        self.fault_rate = fault_rate
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.log: list[Served] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def next_fault(self, requested: str | None) -> str | None:
        with self._lock:
            if requested:
                return _check_fault(requested)
            if self.schedule:
                return self.schedule.popleft()
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(RANDOM_FAULTS)
        return None

    def record(self, served: Served) -> None:
        with self._lock:
            self.log.append(served)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up (its timeout) before a slow answer was sent: not a server error
        super().handle_error(request, client_address)


def _check_fault(fault: str | None) -> str | None:
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"Unknown fault {fault!r}; the kinds are {', '.join(FAULTS)}")
    return fault


class _Handler(BaseHTTPRequestHandler):
    server: SimulatedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # the server keeps its own log; stderr stays quiet
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: with Nagle's algorithm on, the client's delayed ACK held
        # each reply about 40 ms (48.7 ms per request, measured here), a cost no real endpoint adds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            return self._error(404, f"No route {self.path}; use POST /v1/chat/completions or GET /v1/models")
        model = {"id": self.server.lm.model, "object": "model", "created": 0, "owned_by": SIMULATED_LABEL}
        self._send(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"No route {self.path}; use POST /v1/chat/completions")
        try:
            fault = self.server.next_fault(self.headers.get("X-Sim-Fault"))
        except ValueError as error:
            return self._error(400, str(error))
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            request = _to_request(body, self.server.lm.model)
        except (ValueError, TypeError, KeyError) as error:
            return self._error(400, f"Bad request: {error}")
        if fault == "429":
            return self._error(429, "Rate limit reached (simulated fault)", fault,
                               {"Retry-After": f"{self.server.retry_after:g}"})
        if fault == "401":
            return self._error(401, f"Invalid credentials in header 'Authorization: {self.headers.get('Authorization')}'",
                               fault)
        if fault == "500":
            return self._error(500, "Internal server error (simulated fault)", fault)
        if fault == "slow":
            time.sleep(self.server.slow_seconds)
        if fault == "malformed":
            return self._send(200, b'{"id": "chatcmpl-sim", "choices": [{"message": {"content": ', fault)
        response = self.server.lm.complete(request)
        text = "" if fault == "empty" else response.text or ""
        usage = response.usage
        if body.get("stream"):
            return self._send_events(_stream_chunks(body, text, usage, self.server.lm.model), fault)
        self._send(200, {
            "id": f"chatcmpl-sim-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or self.server.lm.model, "system_fingerprint": "simulated",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                      "total_tokens": usage.total_tokens},
        }, fault)

    def _error(self, status: int, message: str, fault: str | None = None, headers: dict | None = None) -> None:
        kind = {401: "authentication_error", 429: "rate_limit_error", 404: "not_found_error", 400: "invalid_request_error"}.get(status, "server_error")
        self._send(status, {"error": {"message": message, "type": kind, "code": str(status)}}, fault, headers)

    def _send_events(self, chunks: list[dict], fault: str | None) -> None:
        """Server-sent events, `data: [DONE]` last; the body ends when the connection closes."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.server.record(Served(self.path, fault, 200))
        for chunk in [*map(json.dumps, chunks), "[DONE]"]:
            self.wfile.write(f"data: {chunk}\n\n".encode())
            self.wfile.flush()

    def _send(self, status: int, payload: dict | bytes, fault: str | None = None, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.server.record(Served(self.path, fault, status))  # before the client can see the reply
        self.wfile.write(data)


def _stream_chunks(body: dict[str, Any], text: str, usage: Any, model: str) -> list[dict]:
    """A completion as OpenAI `chat.completion.chunk`s: a word per chunk, then the finish (and usage if asked)."""
    head = {"id": f"chatcmpl-sim-{uuid.uuid4().hex[:12]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": body.get("model") or model, "system_fingerprint": "simulated"}
    pieces = stream_pieces(text) or [""]
    chunks = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": pieces[0]},
                                    "finish_reason": None}]}]
    chunks += [{**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
               for piece in pieces[1:]]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**head, "choices": [], "usage": {"prompt_tokens": usage.input_tokens,
                       "completion_tokens": usage.output_tokens, "total_tokens": usage.total_tokens}})
    return chunks


def _to_request(body: dict[str, Any], model: str) -> Request:
    """An OpenAI chat body as an lm15 `Request` (system turns joined; text content only)."""
    system, turns = [], []
    for message in body["messages"]:
        text = _text(message.get("content"))
        if message["role"] in ("system", "developer"):
            system.append(text)
        elif message["role"] == "assistant":
            turns.append(Message.assistant(text))
        else:
            turns.append(Message.user(text))
    seed = body.get("seed")
    return Request(model=body.get("model") or model, messages=tuple(turns), system="\n\n".join(system) or None,
                   config=Config(seed=int(seed) if seed is not None else None))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


@contextlib.contextmanager
def serve_simulated(lm: SimulatedLM | None = None, *, port: int = 0, **options: Any) -> Iterator[SimulatedServer]:
    """Run a server in a background thread (port 0: a free port); it stops when the block ends.

        with serve_simulated(SimulatedLM(world)) as server:
            lm = dspy.LM("openai/sim", api_base=server.base_url, api_key="sim")
    """
    server = SimulatedServer(lm or SimulatedLM(), port=port, **options)
    # A short poll interval makes shutdown quick (tests start and stop many servers).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="serve-sim", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_server(world: str, *, port: int = 8000, seed: int = 0, latency: float = 0.0, error_rate: float = 0.02,
               **options: Any) -> None:
    """Serve `sim/<world>` until interrupted (the `dspy-rlm serve-sim` command)."""
    from dspy_rlm.lms.simulated.lm import make_lm

    lm = make_lm(f"sim/{world}", seed=seed, latency=latency, error_rate=error_rate)
    with serve_simulated(lm, port=port, **options) as server:
        print(f"Serving {lm.model} ({SIMULATED_LABEL}) at {server.base_url}\n"
              f'  dspy.LM("openai/{lm.model}", api_base="{server.base_url}", api_key="sim")\n'
              "Stop with Ctrl-C.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", flush=True)
