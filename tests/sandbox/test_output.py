"""truncate_middle and the bounded output buffer."""

from __future__ import annotations

import threading

import pytest

from dspy_rlm.sandbox.output import OutputBuffer, truncate_middle


def test_truncate_middle_keeps_short_text():
    assert truncate_middle("hello", 5) == "hello"
    assert truncate_middle("", 0) == ""


def test_truncate_middle_keeps_head_and_tail_and_counts_the_cut():
    text = "A" * 10 + "x" * 20_000 + "Z" * 10
    out = truncate_middle(text, 20)
    assert out.startswith("A" * 10)
    assert out.endswith("Z" * 10)
    assert "\n... [20,000 characters cut] ...\n" in out
    assert len(out.replace("\n... [20,000 characters cut] ...\n", "")) == 20


def test_truncate_middle_odd_and_zero_budgets():
    assert truncate_middle("abcdef", 3) == "a\n... [3 characters cut] ...\nef"
    assert truncate_middle("abc", 0) == "\n... [3 characters cut] ...\n"
    with pytest.raises(ValueError, match="max_chars"):
        truncate_middle("abc", -1)


def test_buffer_collects_small_output_exactly():
    buf = OutputBuffer(100)
    for chunk in (b"hello ", b"world", "\n"):
        buf(chunk)
    assert buf.text() == "hello world\n"
    assert buf.total_chars == 12


def test_buffer_matches_truncate_middle_and_stays_bounded():
    buf = OutputBuffer(1_000)
    parts = [f"line {i}\n".encode() for i in range(200_000)]
    for part in parts:
        buf(part)
    full = b"".join(parts).decode()
    assert buf.total_chars == len(full)
    assert buf.text() == truncate_middle(full, 1_000)
    # Never more than head + about twice the tail in memory.
    assert len(buf._head) + buf._tail_len < 10_000


def test_buffer_one_huge_chunk():
    buf = OutputBuffer(10)
    buf(b"0123456789" * 1_000_000)
    assert buf.text() == "01234\n... [9,999,990 characters cut] ...\n56789"
    assert buf._tail_len < 10_000


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_buffer_decodes_characters_split_across_chunks(char):
    data = (char * 50).encode("utf-8")
    for size in (1, 2, 3, 5):
        buf = OutputBuffer(1_000)
        for i in range(0, len(data), size):
            buf(data[i : i + size])
        assert buf.text() == char * 50


def test_buffer_replaces_invalid_and_incomplete_bytes():
    buf = OutputBuffer(100)
    buf(b"ok \xff ")
    buf("😀".encode()[:2])  # cut short at the end
    assert buf.text() == "ok \ufffd \ufffd"


def test_buffer_clear_and_threads():
    buf = OutputBuffer(50)
    buf(b"old")
    buf.clear()
    assert buf.text() == "" and buf.total_chars == 0

    def write():
        for _ in range(2_000):
            buf(b"abcd")

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert buf.total_chars == 4 * 2_000 * 4
    assert "32,000 characters" not in buf.text()
    assert "[31,950 characters cut]" in buf.text()
