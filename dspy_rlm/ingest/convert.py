"""A file's type and its conversion to text.

Text-like files (text, Markdown, code, JSON, JSONL, CSV) are kept as they are: decoded as UTF-8
(an invalid byte becomes U+FFFD), newlines made `\\n`, streamed. HTML goes through BeautifulSoup
(lxml's parser when installed: several times faster than html.parser), without script and style.
PDF goes through pypdf page by page (pure Python, no system library, and the best-kept pure-Python
text extractor); DOCX through python-docx, paragraphs and tables in document order. The three are
imported only when such a file is read, with an error naming the extra when missing.
"""

from __future__ import annotations

import codecs
import io
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

CONVERTER_VERSION = 1  # part of the cache key: bump when a conversion's output changes

_BY_EXTENSION = {
    **dict.fromkeys(("txt", "text", "log", "rst", "out", "err"), "text"),
    **dict.fromkeys(("md", "markdown", "mdx"), "markdown"),
    **dict.fromkeys(("json", "ipynb", "geojson"), "json"),
    **dict.fromkeys(("jsonl", "ndjson"), "jsonl"),
    **dict.fromkeys(("csv", "tsv"), "csv"),
    **dict.fromkeys(("html", "htm", "xhtml"), "html"),
    "pdf": "pdf",
    "docx": "docx",
    **dict.fromkeys((
        "py", "pyi", "js", "mjs", "cjs", "ts", "tsx", "jsx", "java", "kt", "scala", "c", "h", "cc", "cpp", "hpp",
        "cs", "go", "rs", "rb", "php", "swift", "m", "sh", "bash", "zsh", "fish", "ps1", "sql", "r", "lua", "pl",
        "hs", "ml", "ex", "exs", "erl", "clj", "dart", "vue", "svelte", "css", "scss", "less", "xml", "yaml", "yml",
        "toml", "ini", "cfg", "conf", "env", "mk", "cmake", "gradle", "proto", "graphql", "tf", "nix", "dockerfile",
    ), "code"),
}
_CODE_NAMES = frozenset({"makefile", "dockerfile", "gemfile", "rakefile", "procfile", "justfile"})
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template"})
_SNIFF_BYTES = 8192
_CHUNK_CHARS = 1 << 20


class Unreadable(Exception):
    """A file that could not be converted: the message is the reason the index shows."""

    def __init__(self, reason: str, type_: str = "unknown"):
        super().__init__(reason)
        self.type = type_


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def detect_type(path: str) -> str:
    """The file's type by its extension, else "text" or "binary" by a look at its first bytes."""
    type_ = type_by_name(path)
    if type_ in ("pdf", "docx"):
        return type_
    with open(path, "rb") as file:
        head = file.read(_SNIFF_BYTES)
    return (type_ or "text") if _looks_like_text(head) else "binary"


def type_by_name(path: str) -> str | None:
    """The type the file's name (its extension) says, None when it says nothing."""
    name = os.path.basename(path).lower()
    return _BY_EXTENSION.get(name.rsplit(".", 1)[-1] if "." in name else "", "code" if name in _CODE_NAMES else None)


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(head, final=False)
    return text.count("\ufffd") <= len(text) // 20  # a few stray bytes: text in a legacy encoding is still text


def convert(path: str, type_: str) -> Iterator[str]:
    """The file's text, in chunks (text-like files streamed; the others converted whole)."""
    if type_ in ("html", "pdf", "docx"):
        with open(path, "rb") as file:
            data = file.read()
        yield _CONVERTERS[type_](data)
        return
    with open(path, encoding="utf-8", errors="replace", newline=None) as file:
        while chunk := file.read(_CHUNK_CHARS):
            yield chunk


def _html(data: bytes) -> str:
    bs4 = _extra("bs4", "HTML")
    try:
        import lxml  # noqa: F401  (the faster parser, when installed)
        parser = "lxml"
    except ImportError:
        parser = "html.parser"
    soup = bs4.BeautifulSoup(data, parser)
    # The visible strings, skipping those under script/style/...: removing those tags one by one
    # (`decompose`) is quadratic in their number (a page with 50,000 scripts took 48 s).
    visible = (piece for piece in soup.find_all(string=True)
               if type(piece) in (bs4.NavigableString, bs4.CData)
               and not any(parent.name in _HIDDEN_TAGS for parent in piece.parents))
    text = "\n".join(visible)
    lines = (line.strip() for line in text.splitlines())  # stripped, so blank lines are empty
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _pdf(data: bytes) -> str:
    pypdf = _extra("pypdf", "PDF")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("PDF is encrypted with a password; decrypt it first", "pdf")
        pages = [f"[page {n}]\n{(page.extract_text() or '').strip()}\n" for n, page in enumerate(reader.pages, 1)]
    except Unreadable:
        raise
    except Exception as exc:  # pypdf raises many types on a damaged file
        raise Unreadable(f"PDF could not be parsed: {type(exc).__name__}: {exc}", "pdf") from None
    return "\n".join(pages)


def _docx(data: bytes) -> str:
    docx = _extra("docx", "DOCX")
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise Unreadable(f"DOCX could not be parsed: {type(exc).__name__}: {exc}", "docx") from None
    lines = []
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append(Paragraph(child, document).text)
        elif tag == "tbl":
            lines.extend(" | ".join(cell.text for cell in row.cells) for row in Table(child, document).rows)
    return "\n".join(lines) + "\n"


def _extra(module: str, what: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"reading {what} files needs the ask extra: pip install 'dspy-rlm[ask]'") from None


_CONVERTERS: dict[str, Callable[[bytes], str]] = {"html": _html, "pdf": _pdf, "docx": _docx}
