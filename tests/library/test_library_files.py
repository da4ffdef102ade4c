"""A library is a folder of plain Python files: read, checked, written stably, hashed, indexed."""

from __future__ import annotations

import pytest

from dspy_rlm.errors import LibraryError
from dspy_rlm.library import CodeLibrary, Provenance, RecordedCall, library_function
from dspy_rlm.library.recording import write_tests
from tests.library.conftest import COUNT_WORDS, write_files


def test_a_hand_written_file_without_a_header_is_a_library_function(library_folder):
    library = CodeLibrary(library_folder)
    assert library.names == ["count_words"]
    function = library.functions["count_words"]
    assert function.source.signature == "count_words(text)"
    assert function.source.summary == "The number of whitespace-separated words in text."
    assert not function.provenance.harvested and function.tests == ()


@pytest.mark.parametrize("files, problem", [
    ({"two.py": 'def a():\n    """A."""\n\ndef b():\n    """B."""\n'}, "exactly one public function (found: a, b)"),
    ({"nodoc.py": "def nodoc(x):\n    return x\n"}, "nodoc has no docstring"),
    ({"broken.py": "def broken(:\n"}, "syntax error at line 1"),
    ({"wrong.py": 'def other():\n    """O."""\n'}, "name the file other.py"),
    ({"runs.py": 'print("loaded")\ndef runs():\n    """R."""\n'}, "no code that runs on load"),
    ({"a.py": 'def _h():\n    """H."""\ndef a():\n    """A."""\n', "b.py": 'def _h():\n    """H."""\ndef b():\n    """B."""\n'},
     "both define _h"),
    ({"count_words.py": COUNT_WORDS, "tests/missing.json": "[]"}, "the library has no missing.py"),
    ({"count_words.py": COUNT_WORDS, "tests/count_words.json": "{}"}, "not a tests file"),
])
def test_a_file_that_breaks_the_rules_is_refused_naming_the_file_and_the_fix(tmp_path, files, problem):
    write_files(tmp_path / "lib", files)
    with pytest.raises(LibraryError, match=problem.replace("(", r"\(").replace(")", r"\)")) as error:
        CodeLibrary(tmp_path / "lib")
    assert str(tmp_path / "lib") in str(error.value)


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(LibraryError, match="no such library folder"):
        CodeLibrary(tmp_path / "nowhere")


def test_the_header_records_provenance_and_reads_back(tmp_path):
    origin = Provenance(program="niah", run="train[3]", date="2026-12-02", score="1")
    library = CodeLibrary(functions=[library_function(COUNT_WORDS, origin)])
    text = library.files()["count_words.py"]
    assert text.startswith("# dspy-rlm library: harvested\n# program: niah\n# run: train[3]\n# date: 2026-12-02\n")
    again = CodeLibrary(library.write(tmp_path / "lib"))
    assert again.functions["count_words"].provenance == origin


def test_a_regenerated_library_is_byte_identical_and_hashes_the_same(tmp_path):
    messy = "def count_words( text ) :\n    '''The number of whitespace-separated words in text.'''\n    return len(text.split())   # comment\n"
    calls = [RecordedCall("count_words", ("a b",), {}, 2)]
    first = CodeLibrary(functions=[library_function(messy)]).with_tests({"count_words": calls})
    second = CodeLibrary(functions=[library_function(COUNT_WORDS)]).with_tests({"count_words": calls})
    first.write(tmp_path / "one")
    second.write(tmp_path / "two")
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert [str(p) for p in files] == ["count_words.py", "tests/count_words.json"]
    for relative in files:
        assert (tmp_path / "one" / relative).read_bytes() == (tmp_path / "two" / relative).read_bytes()
    assert first.content_hash == second.content_hash == CodeLibrary(tmp_path / "one").with_tests({}).content_hash


def test_writing_removes_stale_library_files_only(tmp_path):
    folder = write_files(tmp_path / "lib", {"old.py": 'def old():\n    """Old."""\n', "README.md": "notes"})
    CodeLibrary(functions=[library_function(COUNT_WORDS)]).write(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "count_words.py"]


def test_the_index_lists_signature_and_first_docstring_line_within_its_bound():
    functions = [library_function(f'def f{i}(a, b=2):\n    """Function number {i}.\n\n    More text."""\n')
                 for i in range(200)]
    library = CodeLibrary(functions=functions)
    assert library.index_text().splitlines()[0] == "- f0(a, b=2): Function number 0."
    bounded = library.index_text(max_chars=500)
    assert len(bounded) <= 500 and bounded.splitlines()[-1].startswith("- ... and ")
    assert "more" in bounded.splitlines()[-1]


def test_the_tests_file_format_is_stable_json():
    text = write_tests([RecordedCall("f", ([1, 2],), {"z": 1, "a": 2}, {"b": 1, "a": 2})])
    assert text == ('[\n  {\n    "args": [\n      [\n        1,\n        2\n      ]\n    ],\n    "kwargs": {\n'
                    '      "a": 2,\n      "z": 1\n    },\n    "result": {\n      "a": 2,\n      "b": 1\n    }\n  }\n]\n')


def test_a_saved_state_carries_the_files_and_refuses_a_tampered_one():
    library = CodeLibrary(functions=[library_function(COUNT_WORDS)])
    state = library.to_state()
    assert CodeLibrary.from_state(state).files() == library.files()
    state["files"]["count_words.py"] = state["files"]["count_words.py"].replace("len(", "sum(1 for _ in ")
    with pytest.raises(LibraryError, match="do not match its hash"):
        CodeLibrary.from_state(state)
