"""Bad input is listed in the index with its reason; the rest is read. Only nothing at all is an error."""

from __future__ import annotations

import os
import sys

import pytest

from dspy_rlm.ingest import read_corpus


def entry(corpus, path):
    return next(e for e in corpus.files if e.path == str(path))


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.txt"
    path.write_text("the good file\n")
    return path


def test_a_missing_path_is_an_error_row(tmp_path, good, cache):
    corpus = read_corpus([tmp_path / "nope", good], cache_dir=cache)
    missing = entry(corpus, tmp_path / "nope")
    assert (missing.status, missing.offset, missing.chars) == ("error", -1, 0)
    assert "no such file" in missing.reason
    assert "the good file" in corpus.context


def test_a_binary_file_is_skipped_as_binary(tmp_path, good, cache):
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    (tmp_path / "blob").write_bytes(bytes(range(256)) * 10)
    corpus = read_corpus([tmp_path / "image.png", tmp_path / "blob", good], cache_dir=cache)
    for name in ("image.png", "blob"):
        row = entry(corpus, tmp_path / name)
        assert (row.type, row.status, row.offset) == ("binary", "skipped", -1) and "binary" in row.reason


def test_an_empty_folder_is_a_skipped_row(tmp_path, good, cache):
    (tmp_path / "empty").mkdir()
    row = entry(read_corpus([tmp_path / "empty", good], cache_dir=cache), tmp_path / "empty")
    assert (row.type, row.status) == ("folder", "skipped") and "empty folder" in row.reason


def test_a_file_over_the_cap_is_skipped_with_its_size_and_never_read(tmp_path, good, cache):
    big = tmp_path / "huge.log"
    with open(big, "wb") as file:  # sparse: 5 GB on paper, nothing on disk
        file.truncate(5 * 1024**3)
    corpus = read_corpus([big, good], cache_dir=cache, max_file_bytes=100 * 1024**2)
    row = entry(corpus, big)
    assert (row.status, row.type, row.size) == ("skipped", "text", 5 * 1024**3)
    assert "over the 100.0 MB cap (5.0 GB)" in row.reason


def test_a_pdf_that_does_not_parse_is_an_error_row(tmp_path, good, cache):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    row = entry(read_corpus([tmp_path / "bad.pdf", good], cache_dir=cache), tmp_path / "bad.pdf")
    assert (row.type, row.status) == ("pdf", "error") and row.reason.startswith("PDF could not be parsed")


def test_a_missing_extra_is_an_error_row_naming_it(tmp_path, good, cache, monkeypatch):
    (tmp_path / "page.html").write_text("<p>hi</p>")
    monkeypatch.setitem(sys.modules, "bs4", None)  # as if beautifulsoup4 were not installed
    row = entry(read_corpus([tmp_path / "page.html", good], cache_dir=cache), tmp_path / "page.html")
    assert row.status == "error" and "pip install 'dspy-rlm[ask]'" in row.reason


def test_nothing_readable_is_a_value_error_listing_why(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="nothing could be read") as caught:
        read_corpus([tmp_path / "nope", tmp_path / "empty"], cache_dir=cache)
    assert "no such file" in str(caught.value) and "empty folder" in str(caught.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_special_file_in_a_folder_is_skipped_not_opened(tmp_path, cache):
    """A named pipe would block the read forever: it is listed as not a regular file."""
    (tmp_path / "pipe").mkdir()
    os.mkfifo(tmp_path / "pipe" / "fifo")
    (tmp_path / "pipe" / "ok.txt").write_text("fine")
    corpus = read_corpus([tmp_path / "pipe"], cache_dir=cache)
    row = next(e for e in corpus.files if e.path == "fifo")
    assert row.status == "skipped" and "not a regular file" in row.reason


def test_a_linked_folder_is_listed_not_followed(tmp_path, cache):
    """A symlink to a folder could loop: it is a skipped row, and the folder it names is not read."""
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "ok.txt").write_text("fine")
    (tmp_path / "top" / "loop").symlink_to(tmp_path / "top", target_is_directory=True)
    corpus = read_corpus([tmp_path / "top"], cache_dir=cache)
    assert [(e.path, e.status) for e in corpus.files] == [("loop", "skipped"), ("ok.txt", "ok")]
    assert "not followed" in corpus.files[0].reason
