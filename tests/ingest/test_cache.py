"""The conversion cache: keyed by the bytes' sha256, so a second read converts nothing."""

from __future__ import annotations

from dspy_rlm.ingest import read_corpus


def entries(cache):
    return sorted(cache.glob("??/*.txt"))


def test_a_second_read_converts_nothing_and_gives_the_same_context(folder, cache):
    first = read_corpus([folder], cache_dir=cache)
    second = read_corpus([folder], cache_dir=cache)
    assert first.converted == len(first.files) and first.cache_hits == 0
    assert second.converted == 0 and second.cache_hits == len(second.files)
    assert second.context == first.context and second.files == first.files


def test_the_cache_follows_content_not_names(folder, cache):
    """A renamed copy is a hit; a changed file is converted again."""
    read_corpus([folder], cache_dir=cache)
    (folder / "copy.txt").write_bytes((folder / "notes.txt").read_bytes())
    (folder / "src/app.py").write_text("def changed():\n    pass\n")
    again = read_corpus([folder], cache_dir=cache)
    assert again.converted == 1 and "def changed" in again.context


def test_a_damaged_entry_is_converted_again(folder, cache):
    """A truncated text or unreadable metadata is not trusted: the file is converted anew."""
    first = read_corpus([folder / "README.md", folder / "notes.txt"], cache_dir=cache)
    texts = entries(cache)
    assert len(texts) == 2
    texts[0].write_bytes(texts[0].read_bytes()[:3])  # a truncated text
    texts[1].with_suffix(".json").write_text("{not json")  # damaged metadata
    again = read_corpus([folder / "README.md", folder / "notes.txt"], cache_dir=cache)
    assert again.converted == 2 and again.cache_hits == 0
    assert again.context == first.context


def test_no_temporary_files_are_left_behind(folder, cache):
    read_corpus([folder], cache_dir=cache, inline_chars=0)
    assert not [path for path in cache.rglob("*") if path.name.endswith(".tmp")]


def test_a_failed_conversion_leaves_no_entry(tmp_path, cache):
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (tmp_path / "ok.txt").write_text("fine")
    read_corpus([tmp_path / "broken.pdf", tmp_path / "ok.txt"], cache_dir=cache)
    assert len(entries(cache)) == 1
