"""Files and folders as RLM inputs: read, converted to text, cached, indexed (no DSPy here)."""

from dspy_rlm.ingest.corpus import Corpus, FileEntry, read_corpus, split_context

__all__ = ["Corpus", "FileEntry", "read_corpus", "split_context"]
