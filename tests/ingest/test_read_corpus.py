"""read_corpus: every file type becomes text in one `context`, each at the offset its index row gives."""

from __future__ import annotations

import pytest

from dspy_rlm.ingest import FileEntry, read_corpus, split_context
from tests.ingest.files import MARKERS, TYPES, make_pdf


def by_path(corpus):
    return {entry.path: entry for entry in corpus.files}


def text_of(corpus, entry):
    return corpus.context[entry.offset : entry.offset + entry.chars]


def test_each_file_type_is_converted_and_found_at_its_offset(folder, cache):
    """Text, Markdown, code, JSON, JSONL, CSV, HTML, PDF and DOCX: each one's marker is in its own slice."""
    corpus = read_corpus([folder], cache_dir=cache)
    entries = by_path(corpus)
    for path, marker in MARKERS.items():
        entry = entries[path]
        assert (entry.type, entry.status) == (TYPES[path], "ok"), entry
        assert marker in text_of(corpus, entry), path
        assert entry.size == (folder / path).stat().st_size


def test_the_index_is_plain_dicts_in_walk_order(folder, cache):
    corpus = read_corpus([folder], cache_dir=cache)
    index = corpus.index()
    assert index == [entry.as_dict() for entry in corpus.files]
    assert set(index[0]) == {"path", "type", "size", "offset", "chars", "status", "reason"}
    offsets = [row["offset"] for row in index]
    assert offsets == sorted(offsets)  # the context holds the files in the index's order
    assert index[0]["path"] == ".gitignore"  # a folder's own files first, by name, then its subfolders
    assert len(corpus.context) == corpus.chars


def test_html_loses_script_and_style_and_keeps_the_text(folder, cache):
    html = text_of(corpus := read_corpus([folder / "web"], cache_dir=cache), by_path(corpus)["page.html"])
    assert "Heading" in html and MARKERS["web/page.html"] in html
    assert "script-secret" not in html and "color: red" not in html


def test_pdf_pages_and_docx_tables_are_read_in_order(folder, cache):
    corpus = read_corpus([folder / "docs"], cache_dir=cache)
    pdf, docx = text_of(corpus, by_path(corpus)["report.pdf"]), text_of(corpus, by_path(corpus)["memo.docx"])
    order = [pdf.index(part) for part in ("[page 1]", MARKERS["docs/report.pdf"], "[page 2]", "second page")]
    assert order == sorted(order)
    assert docx.index(MARKERS["docs/memo.docx"]) < docx.index("closing words") < docx.index("cell-a | cell-b")
    assert "cell-c | cell-d" in docx


def test_the_handwritten_pdf_helper_makes_a_pdf_pypdf_reads(tmp_path):
    """The fixture PDF is real: pypdf finds its pages and text."""
    import pypdf

    reader = pypdf.PdfReader(make_pdf(tmp_path / "x.pdf", ["alpha (one)", "beta"]))
    assert [page.extract_text().strip() for page in reader.pages] == ["alpha (one)", "beta"]


def test_gitignore_git_folders_and_nested_gitignores_are_honoured(folder, cache):
    corpus = read_corpus([folder], cache_dir=cache)
    paths = set(by_path(corpus))
    assert paths == set(MARKERS) | {".gitignore", "src/generated/.gitignore", "src/generated/keep.py"}
    for left_out in ("ignored-build-output", "ignored-log-line", "ignored_generated", "ignored-git-config"):
        assert left_out not in corpus.context


def test_gitignore_can_be_turned_off(folder, cache):
    paths = set(by_path(read_corpus([folder], cache_dir=cache, respect_gitignore=False)))
    assert {"build/output.txt", "debug.log", "src/generated/table.gen.py"} <= paths
    assert not any(path.startswith(".git/") for path in paths)  # .git is never read


def test_include_and_exclude_globs_select_files(folder, cache):
    only_data = read_corpus([folder], include=["data/*"], exclude=["*.csv"], cache_dir=cache)
    assert set(by_path(only_data)) == {"data/config.json", "data/events.jsonl"}
    python = read_corpus([folder], include=["*.py"], cache_dir=cache)
    assert set(by_path(python)) == {"src/app.py", "src/generated/keep.py"}


def test_paths_are_relative_to_one_folder_and_prefixed_when_several(folder, cache):
    one = read_corpus([folder / "data"], cache_dir=cache)
    assert "config.json" in by_path(one)
    several = read_corpus([folder / "data", folder / "notes.txt"], cache_dir=cache)
    assert {str(folder / "data" / "config.json"), str(folder / "notes.txt")} <= set(by_path(several))


def test_headers_separate_files_and_parse_back(folder, cache):
    """The header format and its parser live on FileEntry; split_context recovers each file's text."""
    corpus = read_corpus([folder], cache_dir=cache)
    pieces = dict(split_context(corpus.context))
    for entry in corpus.files:
        assert pieces[entry.path] == text_of(corpus, entry)
        header_line = corpus.context[: entry.offset].rsplit("\n", 2)[-2]
        assert FileEntry.parse_header(header_line) == (entry.path, entry.type, entry.size)
    assert FileEntry.parse_header("just a line") is None


def test_text_is_utf8_with_unix_newlines(folder, cache):
    corpus = read_corpus([folder / "notes.txt", folder / "README.md"], cache_dir=cache)
    notes = text_of(corpus, by_path(corpus)[str(folder / "notes.txt")])
    assert "\r" not in notes and "line three\nwindows line\n" in notes
    assert "ünïcode" in corpus.context


@pytest.mark.parametrize("inline", [0, 10**9])
def test_a_large_corpus_is_a_text_file_with_the_same_text(folder, cache, inline):
    """Above the inline threshold the context is a TextFile holding exactly what the str would."""
    from dspy_rlm.sandbox import TextFile

    small = read_corpus([folder], cache_dir=cache)
    corpus = read_corpus([folder], cache_dir=cache, inline_chars=inline)
    if inline == 0:
        assert isinstance(corpus.context, TextFile) and corpus.context.chars == len(small.context)
        with open(corpus.context.path, encoding="utf-8", newline="") as file:
            assert file.read() == small.context
    else:
        assert corpus.context == small.context


def test_html_with_many_scripts_converts_in_linear_time(tmp_path, cache):
    """Removing tags one by one (`decompose`) is quadratic: 30,000 scripts took ~17 s; now about 2 s."""
    import time

    page = tmp_path / "many.html"
    page.write_text("<html><body>" + "".join(f"<p>para {i}</p><script>hidden{i}</script>" for i in range(30_000))
                    + "<template><div>template-only</div></template></body></html>")
    started = time.perf_counter()
    corpus = read_corpus([page], cache_dir=cache)
    assert time.perf_counter() - started < 10  # generous: 5× the expected time on a busy machine
    assert "para 29999" in corpus.context
    assert "hidden" not in corpus.context and "template-only" not in corpus.context
