"""Nested XML returns (SSDA903 XML, CIN census, ...) flattened into related tables, driven by the schema.

The schema's ``xml`` block names the record element (a child), values inherited from the record (the
child's id), and the repeating blocks whose position keys lower tables (``levels``). Each table names
the path of its row element below the record. Parsing is streaming and safe: no DTD, no entity
expansion, no network.
"""
from __future__ import annotations

import codecs
import functools
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.ingest.readers.text import refuses_dtd
from transforms.ingest.readers.xml_flatten import ESCAPED_CR, FIELD, ROW, flattener
from transforms.schema import Collection, Table

_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                       remove_comments=True)


PROLOG_LIMIT = 16 << 20     # a prolog (declaration, comments) longer than 16 MB is not a return's
_NAME = re.compile(r"[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?")


def prolog_root(path: Path) -> str | None:
    """The root element's name (without a prefix), found by reading the prolog however long it is.

    Raises ``UnreadableFile`` when the prolog holds a DOCTYPE, ENTITY or any other ``<!`` declaration
    (statutory returns never carry one; in a prolog it is an entity expansion or an external-entity read
    however many bytes of comment come before it), or is longer than ``PROLOG_LIMIT``. Returns None when
    the start is not XML at all (the parser then says why). The file is read in chunks; nothing is parsed.
    """
    with open(path, "rb") as fh:
        raw = fh.read(1 << 16)
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        decoder = codecs.getincrementaldecoder("utf-16" if utf16 else "utf-8")(errors="replace")
        buf = decoder.decode(raw).lstrip("\ufeff")
        i = 0
        while True:
            while i < len(buf) and buf[i] in " \t\r\n":
                i += 1
            need_more = False
            if i >= len(buf) - 1:
                need_more = True
            elif buf.startswith("<?", i):
                j = buf.find("?>", i + 2)
                need_more, i = (True, i) if j < 0 else (False, j + 2)
            elif buf.startswith("<!--", i):
                j = buf.find("-->", i + 4)
                need_more, i = (True, i) if j < 0 else (False, j + 3)
            elif buf.startswith("<!", i):
                if len(buf) - i < 9:
                    need_more = True
                else:
                    word = buf[i + 2:i + 9].upper()
                    what = "DOCTYPE" if word.startswith("DOCTYPE") else "ENTITY" if word.startswith("ENTITY") else "<!"
                    raise UnreadableFile(f"XML with a {what} declaration in its prolog (at character {i}) is "
                                         "refused: returns never carry a DOCTYPE or ENTITY declaration")
            elif buf.startswith("<", i):
                m = _NAME.match(buf, i + 1)
                if m and m.end() < len(buf):
                    return m.group(0).split(":")[-1]
                need_more = m is not None or i + 1 >= len(buf)
                if not need_more:
                    return None
            else:
                return None
            if need_more:
                raw = fh.read(1 << 20)
                if not raw:
                    return None
                if len(buf) - i > PROLOG_LIMIT:
                    raise UnreadableFile(f"XML prolog longer than {PROLOG_LIMIT >> 20} MB before the root element: refused")
                buf = buf[i:] + decoder.decode(raw)
                i = 0


def check_safe(path: Path) -> None:
    """Refuse a DTD anywhere in the prolog (``prolog_root``), and one in the first 64 KB in any case."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if refuses_dtd(head):
        raise UnreadableFile("XML with a DOCTYPE or ENTITY declaration is refused (returns never carry one)")
    prolog_root(path)


def _syntax_problem(exc: Exception) -> str:
    """lxml's message in words a data team can act on (depth limits named as such)."""
    text = str(exc)
    m = re.search(r"Excessive depth in document: (\d+)", text)
    line = re.search(r"line (\d+)", text)
    if m:
        return (f"XML nested deeper than {m.group(1)} elements{f' (line {line.group(1)})' if line else ''}: "
                "excessive nesting depth, refused")
    if "amplification" in text or "entity" in text.lower():
        return "XML entity expansion refused"
    return f"not well-formed XML: {text[:300]}"


def root_and_header(path: Path, header_paths: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The root tag and a few header values, reading only the prolog of the message (never the records)."""
    check_safe(path)
    wanted = {k: v for k, v in (header_paths or {}).items() if "/" in v}
    heads = {v.split("/")[0] for v in wanted.values()}
    values: dict[str, str] = {}
    root_tag = ""
    stack: list[str] = []
    try:
        for event, elem in etree.iterparse(str(path), events=("start", "end"), **_PARSER_OPTIONS):
            name = etree.QName(elem).localname
            if event == "start":
                if not root_tag:
                    root_tag = name
                    if not wanted:
                        break
                elif len(stack) == 1 and name not in heads:
                    break  # past the header: the records start here
                stack.append(name)
                continue
            rel = "/".join(stack[1:])
            for key, want in wanted.items():
                if rel == want and elem.text and elem.text.strip():
                    values[key] = elem.text.strip()
            stack.pop()
    except etree.XMLSyntaxError as exc:
        if not root_tag:
            raise UnreadableFile(_syntax_problem(exc)) from None
    return root_tag, values


def body_path(path: Path, depth: int = 4) -> list[str]:
    """Names of the first element after the header and its first descendants, e.g. ``[Children, Child,
    ChildIdentifiers, LAchildID]``: the structure that says what a message is when its header does not."""
    check_safe(path)
    names: list[str] = []
    level = 0
    try:
        for event, elem in etree.iterparse(str(path), events=("start", "end"), **_PARSER_OPTIONS):
            if event == "end":
                level -= 1
                if names:
                    break          # the first record's chain ended
                continue
            level += 1
            name = etree.QName(elem).localname
            if level == 2 and not names and name == "Header":
                continue
            if level >= 2 and (names or level == 2) and not _in_header(elem):
                names.append(name)
                if len(names) >= depth:
                    break
    except etree.XMLSyntaxError:
        pass
    return names


def _in_header(elem) -> bool:
    parent = elem.getparent()
    while parent is not None and parent.getparent() is not None:
        if etree.QName(parent).localname == "Header" and parent.getparent().getparent() is None:
            return True
        parent = parent.getparent()
    return False


CHUNK_RECORDS = 2000   # records flattened per stylesheet run: memory stays that of a few thousand records


def _local(tag) -> str:
    """Element name without a namespace: councils' software may or may not declare one."""
    return tag if tag[:1] != "{" else tag.split("}", 1)[1]


_NAMESPACED = etree.XPath("boolean(//*[namespace-uri()])")


def read_records(path: Path, coll: Collection, tables: list[Table]) -> RawTables:
    """The file's rows of each table, as strings (``source_row`` the line its element starts on).

    Streaming: lxml parses the file record by record (``xml.record``, and any table's own record); every
    ``CHUNK_RECORDS`` records the generated stylesheet (``xml_flatten``) writes their rows in C, and the
    records are dropped. Namespaces are ignored (a namespaced part is renamed to local names first).
    Raises ``UnreadableFile`` for a root other than the schema's, a DTD, or XML that is not well-formed
    (the parser's reason, depth limits named as such).
    """
    spec = coll.spec["xml"]
    root_tag, header = root_and_header(path, spec.get("header"))
    if root_tag != spec["root"]:
        raise UnreadableFile(f"root element is <{root_tag}>, expected <{spec['root']}> for {coll.id}")
    record_tag = spec["record"].split("/")[-1]
    flat = flattener(coll, tables)
    fields: dict[str, list[str]] = {layout.tag: [] for layout in flat.layouts}
    offsets = dict.fromkeys(flat.counted, 0)
    escaped = False
    records = 0
    pending: list = []
    try:
        for _, record in etree.iterparse(str(path), events=("end",), tag=[f"{{*}}{t}" for t in flat.record_tags],
                                         **_PARSER_OPTIONS):
            records += _local(record.tag) == record_tag
            pending.append(record)
            if len(pending) >= CHUNK_RECORDS:
                escaped |= _flatten_part(coll, tables, flat, pending, offsets, fields)
        if pending:
            escaped |= _flatten_part(coll, tables, flat, pending, offsets, fields)
    except etree.XMLSyntaxError as exc:
        raise UnreadableFile(_syntax_problem(exc)) from None
    frames = {layout.table.name: _frame(layout, fields[layout.tag], escaped) for layout in flat.layouts}
    return RawTables(frames, dict(header, records=str(records)))


def _flatten_part(coll: Collection, tables: list[Table], flat, pending: list, offsets: dict[str, int],
                  fields: dict[str, list[str]]) -> bool:
    """Flatten the records ``pending`` (complete: their end was parsed), append each table's fields, and
    drop them. The records are first moved out of the tree being parsed into a document of their own: the
    parser builds ahead of the events it reports, so the tree already holds later, unfinished records.
    Returns whether carriage returns in values had to be escaped."""
    part = etree.Element("part")
    for record in pending:
        parent = record.getparent()
        if parent is not None:
            while record.getprevious() is not None:     # what came before the record (whitespace, ...)
                del parent[0]
        part.append(record)                             # moved, with its line numbers
    if _NAMESPACED(part):
        for elem in part.iter("{*}*"):
            elem.tag = _local(elem.tag)
    tree = part.getroottree()
    params = {f"offset_{t}": str(n) for t, n in offsets.items()}
    text = str(flat.xslt(tree, **params))
    rows = _split(text, flat)
    escaped = rows is None
    if escaped:   # a value holds a carriage return (&#13;): the escaping stylesheet writes it as ESCAPED_CR
        text = str(flattener(coll, tables, escape_cr=True).xslt(tree, **params))
        rows = _split(text, flat, check=False)
    for tag, joined in rows.items():
        fields[tag].extend(joined.split(FIELD))
    for record in pending:
        tag = _local(record.tag)
        if tag in offsets:
            offsets[tag] += 1
    pending.clear()
    return escaped


def _split(text: str, flat, check: bool = True) -> dict[str, str] | None:
    """The output's rows by table, each table's rows joined by ``FIELD``. With ``check``, None when the
    carriage returns in the text are not exactly the separators (a value held one)."""
    rows = text.split(ROW)
    rows.pop()                      # the text ends with ROW
    width = {layout.tag: layout.width for layout in flat.layouts}
    by_tag: dict[str, list[str]] = {tag: [] for tag in width}
    for row in rows:
        bucket = by_tag.get(row[:1])
        if bucket is None:
            return None if check else _unexpected(row)
        bucket.append(row)
    if check and text.count("\r") != sum(width[t] * len(b) for t, b in by_tag.items()):
        return None
    return {tag: FIELD.join(b) for tag, b in by_tag.items() if b}


def _unexpected(row: str):
    raise UnreadableFile("XML flattening produced a row it cannot place (a bug in the generated stylesheet)")


def _frame(layout, fields: list[str], escaped: bool) -> pd.DataFrame:
    """One table's fields (``layout.width`` per row) as the DataFrame of strings readers return: values
    trimmed (Python's whitespace), blanks null, ``skip_empty`` rows without a value of their own dropped."""
    table = layout.table
    columns = ["source_row", *layout.columns, *layout.sequence_keys]
    width = layout.width
    if not fields:
        return pd.DataFrame([], columns=columns).astype({c: "str" for c in layout.columns})
    data = {"source_row": pa.array(fields[1::width]).cast(pa.int64())}
    for j, name in enumerate(layout.columns):
        values = pa.array(fields[2 + j::width], pa.string())
        if escaped:
            values = pc.replace_substring(values, ESCAPED_CR, "\r")
        values = pc.utf8_trim_whitespace(values)
        data[name] = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    for j, key in enumerate(layout.sequence_keys):
        ordinals = pa.array(fields[2 + len(layout.columns) + j::width], pa.string())
        data[key] = (pa.nulls(len(ordinals)) if pc.all(pc.equal(ordinals, "")).as_py()
                     else ordinals.cast(pa.int64()))
    arrow = pa.table(data)
    if table.xml_skip_empty and layout.own:
        empty = functools.reduce(pc.and_, [pc.is_null(arrow[c]) for c in layout.own])
        arrow = arrow.filter(pc.invert(empty))
    return arrow.to_pandas()
