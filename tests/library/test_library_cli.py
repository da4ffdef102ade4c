"""`dspy-rlm library list | show | test | diff`."""

from __future__ import annotations

from dspy_rlm.cli.main import main
from dspy_rlm.library import CodeLibrary, RecordedCall, library_function
from tests.library.conftest import COUNT_WORDS


def _library(folder, body="len(text.split())"):
    code = COUNT_WORDS.replace("len(text.split())", body)
    library = CodeLibrary(functions=[library_function(code)])
    return library.with_tests({"count_words": [RecordedCall("count_words", ("a b c",), {}, 3)]}).write(folder)


def test_list_and_show(tmp_path, capsys):
    folder = _library(tmp_path / "lib")
    assert main(["library", "list", "--library", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "1 function(s), sha256:" in out and "count_words(text)" in out and "hand-written; 1 recorded test(s)" in out
    assert main(["library", "show", "count_words", "-l", str(folder)]) == 0
    assert "def count_words(text):" in capsys.readouterr().out
    assert main(["library", "show", "nope", "-l", str(folder)]) == 2
    assert "no function 'nope'" in capsys.readouterr().err


def test_test_passes_and_fails_when_the_function_changes(tmp_path, capsys):
    good = _library(tmp_path / "good")
    assert main(["library", "test", "-l", str(good)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    bad = _library(tmp_path / "bad", body="len(text)")
    assert main(["library", "test", "-l", str(bad)]) == 1
    assert "FAIL count_words[0]: returned 5, recorded 3" in capsys.readouterr().out


def test_diff_shows_only_real_changes(tmp_path, capsys):
    old, same, new = _library(tmp_path / "old"), _library(tmp_path / "same"), _library(tmp_path / "new", "len(text)")
    assert main(["library", "diff", str(old), str(same)]) == 0
    assert capsys.readouterr().out == ""
    assert main(["library", "diff", str(old), str(new)]) == 1
    diff = capsys.readouterr().out
    assert "-    return len(text.split())\n+    return len(text)\n" in diff and "--- a/count_words.py" in diff


def test_a_bad_library_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "x.py").write_text("def x():\n    return 1\n")
    assert main(["library", "list", "-l", str(tmp_path / "lib")]) == 2
    assert "x has no docstring" in capsys.readouterr().err
