"""The column dictionary as Markdown, generated from ``schemas/`` (never edited by hand)."""
from __future__ import annotations

from pathlib import Path

from transforms import schema
from transforms.catalogue import dictionary, relations


def _cell(value) -> str:
    if value is None or value != value:
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def column_docs() -> str:
    docs = dictionary()
    lines = ["# Column dictionary", "",
             "Generated from `schemas/` by `csreturns docs`; the same text is in the DuckDB catalogue as "
             "`column_dictionary`, `relations` and comments on each relation.", ""]
    changes = []
    for coll in schema.collections().values():
        for year, items in sorted(coll.changes.items()):
            for change in items:
                if change.get("note"):
                    changes.append(f"- {coll.id} {year}: {change['note']}")
    if changes:
        lines += ["## Year-by-year changes declared", "", *changes, ""]
    for rel in relations().itertuples():
        cols = docs[docs["relation"] == rel.relation]
        if cols.empty:
            continue
        lines += [f"## `{rel.relation}`", "", _cell(rel.description), "",
                  "| column | type | description | codes | source field |", "|---|---|---|---|---|"]
        for c in cols.itertuples():
            lines.append(f"| `{c.column_name}` | {_cell(c.type)} | {_cell(c.description)} | {_cell(c.codes)} "
                         f"| {_cell(c.source_field)} |")
        lines.append("")
    return "\n".join(lines)


def write_column_docs(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(column_docs(), encoding="utf-8")
    return out
