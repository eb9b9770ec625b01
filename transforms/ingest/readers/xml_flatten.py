"""The XSLT that flattens a nested XML return into rows of text, generated from the schema's ``xml`` paths.

libxslt (through lxml) walks the records in C and writes one line of text per table row; Python only splits
that text and hands the columns to Arrow (``transforms.ingest.readers.xml_records``). What a row holds is
what the schema says, once:

- the rows of a table are the elements at its ``xml.path`` below its record (``xml.record`` of the
  collection, or the table's own ``xml.record``), in document order;
- a column's value is the text of the first element at one of its ``xml`` paths (relative to the row
  element) that holds non-blank text and no child elements, the paths tried in the order given; a column
  the record passes down (``inherit``) falls back to the record's value;
- a table with ``xml.value`` takes that column from the row element's own text;
- each repeating block named in ``levels`` numbers its elements 1, 2, ... within their parent (the record's
  own level, e.g. SEN2's ``Person``, counts records through the file);
- ``source_row`` is the line where the row element starts (libxml2's line, corrected past line 65,535 where
  it reports the end of the element's first text instead, see ``LINE``).

Output format, per row: the table's tag character, then ``line`` and the values, joined by ``FIELD`` and
ended by ``ROW``. Both are two characters starting with a carriage return, which a parsed document can
only hold through a ``&#13;`` reference (the parser turns every line end into a line feed). For a document
that holds one, ``stylesheet(..., escape_cr=True)`` writes each value's carriage returns as ``ESCAPED_CR``,
which the reader turns back.

Values are written untrimmed; trimming (Python's whitespace, which Arrow's ``utf8_trim_whitespace`` shares)
and empty-to-null happen in Arrow. ``BLANK`` is the same whitespace set, used in XPath to skip blank
elements when looking for the first value.
"""
from __future__ import annotations

from dataclasses import dataclass
from lxml import etree

from transforms.schema import Collection, Table

XSL = "http://www.w3.org/1999/XSL/Transform"
SAXON = "http://icl.com/saxon"          # libexslt's saxon:line-number()
EXSLT_STR = "http://exslt.org/strings"  # str:replace, for the rare document holding a carriage return

FIELD = "\r|"
ROW = "\r\n"
ESCAPED_CR = "\r-"
# Python's str.strip() whitespace that XML 1.0 allows in a document (the others are control characters)
BLANK = " \t\n\r\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
TAGS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"   # one character per table, in table order

# libxml2 keeps an element's line in 16 bits; past 65,535 (with big-line support) it takes the line from the
# element's first text node, i.e. where that text *ends*: one line late for ``<Child>`` followed by an
# indented ``<ChildIdentifiers>``. The newlines of that text are taken off again.
LINE = ("saxon:line-number() - (saxon:line-number() >= 65535 and * and node()[1][self::text()]) * "
        "(string-length(node()[1]) - string-length(translate(node()[1], '\n', '')))")


@dataclass(frozen=True)
class RowLayout:
    """What each line of a table's output holds, in order: ``line``, ``columns``, ``sequence_keys``."""
    table: Table
    tag: str
    columns: tuple[str, ...]
    sequence_keys: tuple[str, ...]
    own: tuple[str, ...]            # columns not inherited from the record (``skip_empty`` looks at these)

    @property
    def width(self) -> int:
        """Fields per row in the output, the tag included."""
        return 2 + len(self.columns) + len(self.sequence_keys)


@dataclass(frozen=True)
class Flattener:
    """A compiled stylesheet and the layout of its output, for one collection and set of tables."""
    xslt: etree.XSLT
    layouts: tuple[RowLayout, ...]
    record_tags: tuple[str, ...]    # every record element (the collection's and tables' own), sorted
    counted: tuple[str, ...]        # record elements whose position is a level: ``offset_<tag>`` parameters


def _steps(path: str | None) -> list[str]:
    return [s for s in (path or "").split("/") if s]


def _literal(text: str) -> str:
    """An XPath string literal (no XPath 1.0 escapes: pick the quote the text lacks)."""
    return f"'{text}'" if "'" not in text else f'"{text}"'


def _first_value(path: str) -> str:
    """The first element at ``path`` with non-blank text and no child elements (a node-set of 0 or 1)."""
    return f"({path})[not(*)][translate(., {_literal(BLANK)}, '')][1]"


def _column_value(paths: list[str]) -> str:
    """The string of the first path that has a value, in the order given (XPath 1.0 has no ``if``: the
    ``substring(s, 1 div condition)`` idiom gives ``s`` when the condition holds and '' otherwise)."""
    found = [_first_value(p) for p in paths]
    parts = [f"string({found[0]})"]
    for i in range(1, len(found)):
        none_before = " or ".join(found[:i])
        parts.append(f"substring(string({found[i]}), 1 div not({none_before}))")
    return parts[0] if len(parts) == 1 else f"concat({', '.join(parts)})"


def _escaped(expr: str, escape_cr: bool) -> str:
    return f"str:replace({expr}, '\r', {_literal(ESCAPED_CR)})" if escape_cr else expr


def layouts(coll: Collection, tables: list[Table]) -> tuple[RowLayout, ...]:
    inherit = coll.spec["xml"].get("inherit", {})
    levels = coll.spec["xml"].get("levels", {})
    if len(tables) > len(TAGS):
        raise ValueError(f"{coll.id}: more than {len(TAGS)} tables in one XML message")
    out = []
    for i, table in enumerate(tables):
        names = tuple(c.name for c in table.columns)
        own = tuple(n for n in names if n not in inherit)
        keys = tuple(table.sequence_keys)
        unknown = [k for k in keys if k not in levels.values()]
        if unknown:
            raise ValueError(f"{coll.id}.{table.name}: key {unknown[0]} is not an XML level")
        out.append(RowLayout(table, TAGS[i], names, keys, own))
    return tuple(out)


def _own_record(coll: Collection, table: Table) -> str:
    """The record element a table's rows sit under (a table may name its own, e.g. CSWW's LALevelVacancies)."""
    record = coll.spec["xml"]["record"].split("/")[-1]
    return (coll.base_tables.get(table.name, {}).get("xml") or {}).get("record", record)


def stylesheet(coll: Collection, tables: list[Table], escape_cr: bool = False) -> etree._Element:
    """The stylesheet as an element tree (attributes escaped by lxml). Its parameters ``offset_<record>``
    are the records of that kind before this part of the document (``read_records`` flattens a file in
    parts), for the record's own level."""
    spec = coll.spec["xml"]
    inherit, levels = spec.get("inherit", {}), spec.get("levels", {})
    nsmap = {"xsl": XSL, "saxon": SAXON, "str": EXSLT_STR}
    root = etree.Element(f"{{{XSL}}}stylesheet", nsmap=nsmap, version="1.0",
                         attrib={"extension-element-prefixes": "saxon str"})
    etree.SubElement(root, f"{{{XSL}}}output", method="text", encoding="utf-8")
    by_record: dict[str, list[RowLayout]] = {}
    for layout in layouts(coll, tables):
        by_record.setdefault(_own_record(coll, layout.table), []).append(layout)
    for record in sorted(by_record):
        if record in levels:
            etree.SubElement(root, f"{{{XSL}}}param", name=f"offset_{record}", select="0")
    template = etree.SubElement(root, f"{{{XSL}}}template", match="/")
    for record, members in sorted(by_record.items()):
        loop = etree.SubElement(template, f"{{{XSL}}}for-each", select=f"//{record}")
        if record in levels:
            etree.SubElement(loop, f"{{{XSL}}}variable", name=levels[record],
                             select=f"position() + $offset_{record}")
        for layout in members:
            _row(loop, layout, inherit, levels, {levels[record]} if record in levels else set(), escape_cr)
    return root


def _row(parent: etree._Element, layout: RowLayout, inherit: dict[str, str], levels: dict[str, str],
         defined: set[str], escape_cr: bool) -> None:
    """Nested ``for-each`` down the table's path (numbering the levels), then one ``value-of`` per row;
    ``defined``: the level variables already set by the record's loop."""
    table = layout.table
    steps = _steps(table.xml_path)
    here = parent
    defined = set(defined)
    for step in steps:
        here = etree.SubElement(here, f"{{{XSL}}}for-each", select=step)
        if step in levels:
            etree.SubElement(here, f"{{{XSL}}}variable", name=levels[step], select="position()")
            defined.add(levels[step])
    up = "../" * len(steps)
    parts = [_literal(layout.tag), LINE]
    for col in table.columns:
        if col.name == table.xml_value:
            value = "string(self::node()[not(*)])"
        else:
            paths = list(col.xml) + ([up + inherit[col.name]] if col.name in inherit else [])
            value = _column_value(paths)
        parts.append(_escaped(value, escape_cr))
    for key in layout.sequence_keys:
        parts.append(f"${key}" if key in defined else "''")
    joined = f", {_literal(FIELD)}, ".join(parts)
    etree.SubElement(here, f"{{{XSL}}}value-of", select=f"concat({joined}, {_literal(ROW)})")


_CACHE: dict[tuple, Flattener] = {}


def flattener(coll: Collection, tables: list[Table], escape_cr: bool = False) -> Flattener:
    """The compiled stylesheet for these tables of ``coll``, cached per process (by the schema file, year and
    tables: compiling costs milliseconds, a census has one per year)."""
    key = (str(coll.path), coll.id, tuple((t.name, t.year) for t in tables), escape_cr)
    found = _CACHE.get(key)
    if found is None:
        record = coll.spec["xml"]["record"].split("/")[-1]
        record_tags = tuple(sorted({_own_record(coll, t) for t in tables} | {record}))
        counted = tuple(t for t in record_tags if t in coll.spec["xml"].get("levels", {}))
        found = Flattener(etree.XSLT(stylesheet(coll, tables, escape_cr)), layouts(coll, tables), record_tags, counted)
        _CACHE[key] = found
    return found
