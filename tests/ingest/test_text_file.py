"""TextFile: a text input the sandboxes mount from a file, loaded as `str`, never read on the host."""

from __future__ import annotations

import os
import tracemalloc

import dspy
import pytest

from dspy_rlm import RLM
from dspy_rlm.core.transcript import describe_value, parse_variables
from dspy_rlm.ingest import read_corpus
from dspy_rlm.sandbox import TextFile
from tests.helpers import steps

TEXT = "first line: héllo\nsecond line\n" + "x" * 1000 + "\nLAST-LINE-MARKER\n"


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "context.txt"
    path.write_text(TEXT, encoding="utf-8")
    return TextFile(str(path), len(TEXT))


@pytest.mark.parametrize("kind", ["make", "make_isolated"])
def test_both_sandboxes_load_a_text_file_as_a_str(kind, request, text_file):
    sandbox = request.getfixturevalue(kind)({"context": text_file, "n": 3})
    result = sandbox.run("print(type(context).__name__, len(context), context.splitlines()[-1], n)")
    assert result.error is None, result.error
    assert result.stdout == f"str {len(TEXT)} LAST-LINE-MARKER 3\n"


@pytest.mark.parametrize("kind", ["make", "make_isolated"])
def test_set_inputs_takes_a_text_file(kind, request, text_file):
    sandbox = request.getfixturevalue(kind)({"x": 1})
    sandbox.set_inputs({"extra": text_file})
    assert sandbox.run("print(extra[:11])").stdout == "first line:\n"


def test_a_text_file_is_described_to_the_model_like_a_str(text_file):
    """Type str, its length in characters, a preview from its head and tail."""
    entry = describe_value("context", text_file, "the files")
    assert entry == describe_value("context", TEXT, "the files")
    (info,) = parse_variables(entry)
    assert (info.type_name, info.length) == ("str", len(TEXT))


def test_a_short_text_file_is_previewed_whole(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("tiny")
    assert describe_value("v", TextFile(str(path), 4)) == describe_value("v", "tiny")


def test_a_missing_file_is_refused_at_once(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TextFile(str(tmp_path / "nope.txt"), 0)


def test_an_rlm_call_reads_a_text_file_context(text_file):
    lm = steps("last = context.splitlines()[-1]\nprint(last)", "SUBMIT(answer=last)")
    with dspy.context(lm=lm):
        result = RLM("context, question -> answer")(context=text_file, question="the last line?")
    assert result.answer == "LAST-LINE-MARKER"
    assert f"Length: {len(TEXT):,}" in lm.requests[0].text
    assert "x" * 900 not in lm.requests[0].text  # previewed, not printed


def test_an_rlm_call_over_a_corpus_text_file_finds_a_file_by_its_index(folder, cache):
    corpus = read_corpus([folder], cache_dir=cache, inline_chars=0)
    assert isinstance(corpus.context, TextFile)
    lm = steps("row = [f for f in files if f['path'] == 'src/app.py'][0]\n"
               "SUBMIT(answer=context[row['offset']:row['offset'] + row['chars']].split('(')[0])")
    with dspy.context(lm=lm):
        result = RLM("context, files: list[dict], question -> answer")(
            context=corpus.context, files=corpus.index(), question="app.py's function?")
    assert result.answer == "def code_marker_3"


def test_mounting_a_50_mb_text_file_does_not_copy_it_into_host_memory(tmp_path, make):
    """The file is linked (or copied) into the mount: host-side Python allocates far less than its size."""
    path = tmp_path / "big.txt"
    line = "2026-01-01 INFO service started, all good\n"
    with open(path, "w") as file:
        for _ in range(50 * 1024 * 1024 // len(line)):
            file.write(line)
    size = os.path.getsize(path)
    tracemalloc.start()
    try:
        sandbox = make({"context": TextFile(str(path), size)})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size // 5, f"mounting allocated {peak:,} bytes for a {size:,}-byte file"
    assert sandbox.run("print(len(context))").stdout == f"{size}\n"


def test_reading_a_50_mb_log_streams_it(tmp_path, cache):
    """read_corpus converts and assembles in chunks: its Python peak is a small fraction of the input."""
    logs = tmp_path / "logs"
    logs.mkdir()
    line = "2026-01-01 12:00:00 WARN disk usage high on node-7\n"
    for n in range(5):
        with open(logs / f"app{n}.log", "w") as file:
            file.write(line * (10 * 1024 * 1024 // len(line)))
    tracemalloc.start()
    try:
        corpus = read_corpus([logs], cache_dir=cache)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(corpus.context, TextFile) and corpus.chars > 50 * 1024 * 1024
    assert peak < 20 * 1024 * 1024, f"read_corpus peaked at {peak:,} bytes for 50 MB of logs"
