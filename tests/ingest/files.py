"""Builders of the test files: a fixture folder with every type, made on the spot (nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A minimal valid PDF, one page per text, each drawn in Helvetica (pypdf extracts it)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        page_id, content_id = len(objects) + 1, len(objects) + 2
        kids.append(f"{page_id} 0 R")
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                       "/Resources << /Font << /F1 FONT 0 R >> >> >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    font_id = len(objects) + 1
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    objects = [body.replace("FONT", str(font_id)) for body in objects]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def make_docx(path: Path, paragraphs: list[str], table: list[list[str]]) -> Path:
    """A DOCX written with python-docx: the paragraphs, then a table."""
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for r, row in enumerate(table):
        for c, text in enumerate(row):
            grid.cell(r, c).text = text
    document.save(path)
    return path


# One distinctive marker per file, so a test can find each file's text in the context.
MARKERS = {
    "notes.txt": "plain-text-marker-1",
    "README.md": "markdown-marker-2",
    "src/app.py": "code_marker_3",
    "data/config.json": "json-marker-4",
    "data/events.jsonl": "jsonl-marker-5",
    "data/table.csv": "csv-marker-6",
    "web/page.html": "html-marker-7",
    "docs/report.pdf": "pdf-marker-8",
    "docs/memo.docx": "docx-marker-9",
}
TYPES = {"notes.txt": "text", "README.md": "markdown", "src/app.py": "code", "data/config.json": "json",
         "data/events.jsonl": "jsonl", "data/table.csv": "csv", "web/page.html": "html",
         "docs/report.pdf": "pdf", "docs/memo.docx": "docx"}


def make_folder(root: Path) -> Path:
    """A folder with one file of each type, plus what must be left out: a .gitignore'd build
    folder and log, a nested .gitignore, and a .git folder."""
    for sub in ("src", "data", "web", "docs", "build", ".git", "src/generated"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    m = MARKERS
    (root / "notes.txt").write_text(f"notes\n{m['notes.txt']}\nline three\r\nwindows line\n", encoding="utf-8")
    (root / "README.md").write_text(f"# Title\n\n{m['README.md']} – ünïcode\n", encoding="utf-8")
    (root / "src/app.py").write_text(f"def {m['src/app.py']}():\n    return 1\n")
    (root / "data/config.json").write_text(json.dumps({"key": m["data/config.json"]}))
    (root / "data/events.jsonl").write_text("\n".join(json.dumps({"event": i, "tag": m["data/events.jsonl"]})
                                                      for i in range(3)) + "\n")
    (root / "data/table.csv").write_text(f"name,value\n{m['data/table.csv']},42\n")
    (root / "web/page.html").write_text(
        f"<html><head><style>body {{ color: red }}</style><script>var hidden = 'script-secret';</script></head>"
        f"<body><h1>Heading</h1><p>{m['web/page.html']}</p></body></html>")
    make_pdf(root / "docs/report.pdf", [f"{m['docs/report.pdf']} first page", "second page text"])
    make_docx(root / "docs/memo.docx", [f"{m['docs/memo.docx']} opening", "closing words"],
              [["cell-a", "cell-b"], ["cell-c", "cell-d"]])
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "build/output.txt").write_text("ignored-build-output\n")
    (root / "debug.log").write_text("ignored-log-line\n")
    (root / "src/generated/.gitignore").write_text("*.gen.py\n")
    (root / "src/generated/table.gen.py").write_text("ignored_generated = 1\n")
    (root / "src/generated/keep.py").write_text("kept_generated = 1\n")
    (root / ".git/config").write_text("[core]\nignored-git-config\n")
    return root
