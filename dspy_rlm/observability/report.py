"""Figures for people: a two-column rich table (the demo's and the optimizer's summaries)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_figures(title: str, figures: dict[str, Any], console: Console | None = None) -> None:
    """Print a two-column table of figures; nested values are shown as compact JSON. Values are
    plain text, never rich markup: an answer holding `[ERROR]` is printed as written."""
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in figures.items():
        table.add_row(key, Text(value if isinstance(value, str) else json.dumps(value, default=str)))
    (console or Console()).print(table)
