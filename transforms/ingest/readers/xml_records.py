"""Nested XML returns (SSDA903 XML, CIN census, ...) flattened into related tables, driven by the schema.

The schema's ``xml`` block names the record element (a child), values inherited from the record (the
child's id), and the repeating blocks whose position keys lower tables (``levels``). Each table names
the path of its row element below the record. Parsing is streaming and safe: no DTD, no entity
expansion, no network.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pandas as pd
from lxml import etree

from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.ingest.readers.text import refuses_dtd
from transforms.schema import Collection, Table

_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                       remove_comments=True)


def check_safe(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if refuses_dtd(head):
        raise UnreadableFile("XML with a DOCTYPE or ENTITY declaration is refused (returns never carry one)")


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
            raise UnreadableFile(f"not well-formed XML: {exc}") from None
    return root_tag, values


def _local(tag) -> str:
    """Element name without a namespace: councils' software may or may not declare one."""
    return tag if tag[:1] != "{" else tag.split("}", 1)[1]


def _walk(elem, steps: list[str], levels: dict[str, str], ordinals: dict[str, int]) -> Iterator:
    if not steps:
        yield elem, ordinals
        return
    step, rest = steps[0], steps[1:]
    i = 0
    for child in elem:
        if isinstance(child.tag, str) and _local(child.tag) == step:
            i += 1
            yield from _walk(child, rest, levels, {**ordinals, levels[step]: i} if step in levels else ordinals)


def _text(elem) -> str | None:
    if elem is None or elem.text is None:
        return None
    value = elem.text.strip()
    return value or None


def _values(elem) -> dict[str, str]:
    """Texts of an element's children and grandchildren by relative path, in one pass (``find`` per
    column was the reader's main cost). The first non-empty occurrence wins."""
    values: dict[str, str] = {}
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        tag = _local(child.tag)
        if len(child):
            for grand in child:
                text = grand.text
                if text is not None and isinstance(grand.tag, str):
                    text = text.strip()
                    if text:
                        values.setdefault(f"{tag}/{_local(grand.tag)}", text)
        else:
            text = child.text
            if text is not None:
                text = text.strip()
                if text:
                    values.setdefault(tag, text)
    return values


def read_records(path: Path, coll: Collection, tables: list[Table]) -> RawTables:
    spec = coll.spec["xml"]
    root_tag, header = root_and_header(path, spec.get("header"))
    if root_tag != spec["root"]:
        raise UnreadableFile(f"root element is <{root_tag}>, expected <{spec['root']}> for {coll.id}")
    record_tag = spec["record"].split("/")[-1]
    inherit = spec.get("inherit", {})
    levels = spec.get("levels", {})
    plans = []
    for table in tables:
        steps = [s for s in (table.xml_path or "").split("/") if s]
        lookups = [(c.name, c.xml) for c in table.columns if c.name != table.xml_value]
        # a table may sit under its own record element (CSWW: LALevelVacancies beside CSWWWorker)
        own_record = (coll.base_tables.get(table.name, {}).get("xml") or {}).get("record", record_tag)
        plans.append((table, steps, lookups, [k for k in table.sequence_keys], own_record))
    record_tags = sorted({p[4] for p in plans} or {record_tag})
    rows: dict[str, list[dict]] = {t.name: [] for t in tables}
    own = {t.name: [c.name for c in t.columns if c.name not in inherit] for t in tables}
    records = 0
    counts: dict[str, int] = {}
    try:
        for _, record in etree.iterparse(str(path), events=("end",), tag=[f"{{*}}{t}" for t in record_tags],
                                         **_PARSER_OPTIONS):
            tag = _local(record.tag)
            counts[tag] = counts.get(tag, 0) + 1
            records += tag == record_tag
            record_values = _values(record)
            inherited = {name: record_values.get(p) for name, p in inherit.items()}
            # the record's own position keys its tables when the schema names it a level (SEN2 Person)
            start = {levels[tag]: counts[tag]} if tag in levels else {}
            for table, steps, lookups, seq_keys, own_record in plans:
                if own_record != tag:
                    continue
                for elem, ordinals in _walk(record, steps, levels, start):
                    found = record_values if elem is record else _values(elem)
                    row = {"source_row": elem.sourceline}
                    for name, paths in lookups:
                        value = None
                        for p in paths:
                            value = found.get(p)
                            if value is not None:
                                break
                        row[name] = value if value is not None else inherited.get(name)
                    if table.xml_value:
                        row[table.xml_value] = _text(elem)
                    if table.xml_skip_empty and all(row.get(c) is None for c in own[table.name]):
                        continue  # a block that only some children have (e.g. OC3 fields in HEADER)
                    for key in seq_keys:
                        row[key] = ordinals.get(key)
                    rows[table.name].append(row)
            record.clear(keep_tail=False)
            parent = record.getparent()
            while parent is not None and record.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        raise UnreadableFile(f"not well-formed XML: {exc}") from None
    frames = {}
    for table, _, _, seq_keys, _ in plans:
        columns = ["source_row", *table.names, *seq_keys]
        frames[table.name] = pd.DataFrame(rows[table.name], columns=columns).astype(
            {c: "str" for c in table.names})
    meta = dict(header, records=str(records))
    return RawTables(frames, meta)
