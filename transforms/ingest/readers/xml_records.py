"""Nested XML returns (SSDA903 XML, CIN census, ...) flattened into related tables, driven by the schema.

The schema's ``xml`` block names the record element (a child), values inherited from the record (the
child's id), and the repeating blocks whose position keys lower tables (``levels``). Each table names
the path of its row element below the record. Parsing is streaming and safe: no DTD, no entity
expansion, no network.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from lxml import etree

from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.ingest.readers.text import refuses_dtd
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


_SHORT_LINES = 65535   # libxml2 keeps an element's line in 16 bits; past it, the line is found through its text


def source_line(elem) -> int | None:
    """The line of the file where ``elem`` starts. Past line 65,535 libxml2 (with big-line support) takes an
    element's line from its first text node, which records the line where that text *ends*: for a record
    such as ``<Child>`` followed by an indented ``<ChildIdentifiers>`` that is one line late. The newlines
    inside that text are taken off again."""
    line = elem.sourceline
    if line is not None and line >= _SHORT_LINES and len(elem) and elem.text:
        line -= elem.text.count("\n")
    return line


def _local(tag) -> str:
    """Element name without a namespace: councils' software may or may not declare one."""
    return tag if tag[:1] != "{" else tag.split("}", 1)[1]


def _text(elem) -> str | None:
    if elem is None or elem.text is None:
        return None
    value = elem.text.strip()
    return value or None


@dataclass
class _RowPlan:
    """How one table takes a row from its element: columns by relative paths, in the frame's order."""
    table: Table
    lookups: list[tuple[str, tuple[str, ...]]]     # column -> paths below the row element, first found wins
    own: list[int]                                 # skip_empty: positions of the columns not inherited
    keys: list[str]                                # sequence keys, after the columns
    value_at: int | None                           # position of the ``xml.value`` column (the element's text)
    rows: list[tuple] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.first = [paths[0] for _, paths in self.lookups]                   # one lookup per column
        self.more = [(i, paths[1:]) for i, (_, paths) in enumerate(self.lookups) if len(paths) > 1]
        self.inherit_at: list[tuple[int, str]] = []                              # set by _plan


@dataclass
class _Step:
    """A node of the schema's paths below a record: the tables whose rows are the elements here, and the
    steps further down (by element name, without a namespace). Every table's path is walked once per
    record, shared prefixes once, in one pass over each element's children."""
    level: str | None = None                       # the sequence key this step's position gives
    tables: list[_RowPlan] = field(default_factory=list)
    below: dict[str, "_Step"] = field(default_factory=dict)
    leaves: set[str] = field(default_factory=set)  # children whose text a row here reads ("Sex")
    parents: dict[str, dict[str, str]] = field(default_factory=dict)   # a child whose children's texts it
    # reads -> their names -> the path they give ("ChildIdentifiers" -> "LAchildID" -> "ChildIdentifiers/LAchildID")

    def wants(self, paths) -> None:
        """Note the relative paths (``A`` or ``A/B``; deeper ones never give a value) the rows here read."""
        for path in paths:
            parts = path.split("/")
            if len(parts) == 1:
                self.leaves.add(path)
            elif len(parts) == 2:
                self.parents.setdefault(parts[0], {})[parts[1]] = path


def _plan(coll: Collection, tables: list[Table]) -> tuple[dict[str, _Step], list[_RowPlan]]:
    """One tree of steps per record element (a table may name its own record, e.g. CSWW's
    LALevelVacancies beside CSWWWorker), and the tables' row plans in the order given."""
    spec = coll.spec["xml"]
    inherit, levels = spec.get("inherit", {}), spec.get("levels", {})
    record_tag = spec["record"].split("/")[-1]
    roots: dict[str, _Step] = {}
    plans = []
    for table in tables:
        own_record = (coll.base_tables.get(table.name, {}).get("xml") or {}).get("record", record_tag)
        node = roots.setdefault(own_record, _Step())
        for step in (s for s in (table.xml_path or "").split("/") if s):
            node = node.below.setdefault(step, _Step(levels.get(step)))
        lookups = [(c.name, c.xml) for c in table.columns if c.name != table.xml_value]
        own = [1 + i for i, c in enumerate(table.columns) if c.name not in inherit]
        value_at = 1 + table.names.index(table.xml_value) if table.xml_value else None
        plan = _RowPlan(table, lookups, own if table.xml_skip_empty else [], list(table.sequence_keys), value_at)
        plan.inherit_at = [(i, name) for i, (name, _) in enumerate(lookups) if name in inherit]
        node.tables.append(plan)
        node.wants(p for _, paths in lookups for p in paths)
        plans.append(plan)
    roots = roots or {record_tag: _Step()}
    for root in roots.values():                 # a record's values give what its tables inherit
        root.wants(inherit.values())
    return roots, plans


def _visit(node: _Step, elem, ordinals: dict[str, int], inherited: dict[str, str | None],
           inherit: dict[str, str] | None = None) -> None:
    """Take the rows of ``node``'s tables from ``elem`` and walk on below it. For a record, ``inherit``
    names the paths of the values its rows and every row below inherit (``inherited`` is then ignored).

    One pass over ``elem``'s children finds the texts its rows read (``A`` from a child without
    children, ``A/B`` from a grandchild; the first non-empty occurrence wins) and the children that are
    steps further down, which are then visited in document order, so each table's rows come in the
    order of its elements in the file."""
    found: dict[str, str] = {}
    leaves, parents, below = node.leaves, node.parents, node.below
    subs = []
    for child in elem:
        tag = child.tag
        if type(tag) is not str:
            continue                            # a processing instruction
        if tag[0] == "{":
            tag = tag[tag.index("}") + 1:]
        grands = parents.get(tag)
        if grands is not None and len(child):
            for grand in child:
                name = grand.tag
                if type(name) is not str:
                    continue
                key = grands.get(name if name[0] != "{" else name[name.index("}") + 1:])
                if key is not None and key not in found:
                    text = grand.text
                    if text is not None:
                        text = text.strip()
                        if text:
                            found[key] = text
        elif tag in leaves and tag not in found and not len(child):
            text = child.text
            if text is not None:
                text = text.strip()
                if text:
                    found[tag] = text
        step = below.get(tag)
        if step is not None:
            subs.append((step, child))
    if inherit is not None:                     # the record itself: what its rows inherit is its own
        inherited = {name: found.get(p) for name, p in inherit.items()}
    if node.tables:
        _rows(node, elem, ordinals, found, inherited)
    if subs:
        counts: dict[int, int] = {}
        for step, child in subs:
            if step.level is None:
                _visit(step, child, ordinals, inherited)
            else:
                n = counts[id(step)] = counts.get(id(step), 0) + 1
                _visit(step, child, {**ordinals, step.level: n}, inherited)


def _rows(node: _Step, elem, ordinals: dict[str, int], found: dict[str, str], inherited: dict[str, str]) -> None:
    """The rows of ``node``'s tables that ``elem`` gives (``found``: its values by relative path)."""
    line = None
    for plan in node.tables:
        values = [found.get(p) for p in plan.first]
        for i, paths in plan.more:              # further paths, in order, while none has given a value
            for p in paths:
                if values[i] is not None:
                    break
                values[i] = found.get(p)
        for i, name in plan.inherit_at:         # the record's value where the row has none
            if values[i] is None:
                values[i] = inherited.get(name)
        if line is None:
            line = source_line(elem)
        row = [line, *values]
        if plan.value_at is not None:
            row.insert(plan.value_at, _text(elem))
        if plan.own and all(row[i] is None for i in plan.own):
            continue  # skip_empty: a block that only some children have (e.g. OC3 fields in HEADER)
        for key in plan.keys:
            row.append(ordinals.get(key))
        plan.rows.append(tuple(row))


def read_records(path: Path, coll: Collection, tables: list[Table], arrow: bool = False) -> RawTables:
    """The file's rows of each table, as strings (``source_row`` the line its element starts on).

    Streaming: lxml parses the file record by record (``xml.record``, and any table's own record) and each
    record is dropped once its rows are taken. The schema's paths below a record form one tree walked once
    per record, one pass over each element's children (names matched without their namespace). Each table
    comes as a DataFrame, or with ``arrow`` as a ``pyarrow.Table`` (no pandas: the read stage writes it to
    Parquet as it is): ``source_row`` int64, the table's columns strings (null where absent), then its
    sequence keys (1-based positions, int64). Raises ``UnreadableFile`` for a root other than the schema's,
    a DTD, or XML that is not well-formed (depth limits named as such).
    """
    spec = coll.spec["xml"]
    root_tag, header = root_and_header(path, spec.get("header"))
    if root_tag != spec["root"]:
        raise UnreadableFile(f"root element is <{root_tag}>, expected <{spec['root']}> for {coll.id}")
    record_tag = spec["record"].split("/")[-1]
    inherit = spec.get("inherit", {})
    levels = spec.get("levels", {})
    roots, plans = _plan(coll, tables)
    records = 0
    counts: dict[str, int] = {}
    try:
        for _, record in etree.iterparse(str(path), events=("end",), tag=[f"{{*}}{t}" for t in sorted(roots)],
                                         **_PARSER_OPTIONS):
            tag = _local(record.tag)
            counts[tag] = counts.get(tag, 0) + 1
            records += tag == record_tag
            # the record's own position keys its tables when the schema names it a level (SEN2 Person)
            start = {levels[tag]: counts[tag]} if tag in levels else {}
            _visit(roots[tag], record, start, {}, inherit)
            record.clear(keep_tail=False)
            parent = record.getparent()
            while parent is not None and record.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        raise UnreadableFile(_syntax_problem(exc)) from None
    frames = {}
    for plan in plans:
        table = _arrow_table(plan)
        frames[plan.table.name] = table if arrow else table.to_pandas()
    meta = dict(header, records=str(records))
    return RawTables(frames, meta)


def _arrow_table(plan: _RowPlan) -> pa.Table:
    """A plan's rows as columns: the types pandas gave them before (a column of positions with a gap is
    float64, one with no value at all, or no rows, is of null type), so staged files read back the same."""
    table = plan.table
    names = ["source_row", *table.names, *table.sequence_keys]
    text = set(table.names)
    columns = list(zip(*plan.rows)) if plan.rows else [()] * len(names)
    arrays = []
    for name, values in zip(names, columns):
        if name in text:
            arrays.append(pa.array(values, pa.large_string()))
            continue
        values = pa.array(values)
        if values.null_count and pa.types.is_integer(values.type):
            values = values.cast(pa.float64())
        arrays.append(values)
    return pa.Table.from_arrays(arrays, names=names)
