"""Bounded capture of sandbox output, and head+tail truncation."""

from __future__ import annotations

import codecs
import threading

__all__ = ["OutputBuffer", "truncate_middle"]


def _marker(cut: int) -> str:
    return f"\n... [{cut:,} characters cut] ...\n"


def _split(max_chars: int) -> tuple[int, int]:
    """Characters kept from the head and from the tail; the tail gets the odd one
    because the end of the output (the latest progress, the error) matters most."""
    head = max_chars // 2
    return head, max_chars - head


def truncate_middle(text: str, max_chars: int) -> str:
    """Return `text` if it has at most `max_chars` characters, else its head and
    tail (`max_chars` characters in total) joined by a marker counting the cut."""
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0, got {max_chars}")
    if len(text) <= max_chars:
        return text
    head, tail = _split(max_chars)
    return text[:head] + _marker(len(text) - max_chars) + (text[-tail:] if tail else "")


class OutputBuffer:
    """A sink for eryx's `on_stdout` / `on_stderr` that never holds more than about
    `2 * max_chars` characters, however much the guest prints.

    eryx calls it with bytes chunks from worker threads; a UTF-8 character may be
    split across chunks, so decoding is incremental. `text()` renders the output
    truncated like `truncate_middle`.
    """

    def __init__(self, max_chars: int) -> None:
        if max_chars < 0:
            raise ValueError(f"max_chars must be >= 0, got {max_chars}")
        self._max = max_chars
        self._head_cap, self._tail_cap = _split(max_chars)
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget everything captured so far."""
        with self._lock:
            self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            self._head = ""
            self._tail: list[str] = []
            self._tail_len = 0
            self._total = 0

    def __call__(self, chunk: bytes | str) -> None:
        if isinstance(chunk, str):
            text = chunk
        else:
            with self._lock:
                text = self._decoder.decode(chunk)
        self._add(text)

    def _add(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._total += len(text)
            room = self._head_cap - len(self._head)
            if room > 0:
                self._head += text[:room]
                text = text[room:]
            if not text:
                return
            self._tail.append(text)
            self._tail_len += len(text)
            # Trim only once the tail has doubled, so the cost stays amortised O(1).
            if self._tail_len > 2 * self._tail_cap + 4096:
                joined = "".join(self._tail)[-self._tail_cap :] if self._tail_cap else ""
                self._tail = [joined] if joined else []
                self._tail_len = len(joined)

    @property
    def total_chars(self) -> int:
        """Characters received so far, including those not kept."""
        with self._lock:
            return self._total

    def text(self) -> str:
        """The captured output, head and tail kept, with a marker if anything was cut.
        A character left incomplete at the end is rendered as U+FFFD."""
        with self._lock:
            pending = self._decoder.decode(b"", final=True)
            self._decoder.reset()
        self._add(pending)
        with self._lock:
            tail = "".join(self._tail)
            if self._total <= self._max:
                return self._head + tail
            keep = tail[-self._tail_cap :] if self._tail_cap else ""
            return self._head + _marker(self._total - self._max) + keep
