"""Declarative collection schemas: the single description everything else is derived from.

A collection is one YAML file under ``schemas/``: a base specification of its tables and columns plus
``changes`` keyed by return year (the year ending 31 March). ``Collection.table(name, year)`` resolves the
base plus every change up to that year, so readers, GX suites, Parquet types and docs all see the same
year-aware specification.

Every file is first parsed into typed models that refuse what they do not know (pydantic,
``extra="forbid"``): ``ReturnSpec`` (returns and reference lists, with ``TableSpec``, ``ColumnSpec`` and
``Change``), ``EesSpec`` (one published EES dataset, with ``Measure``) and ``PublishedSpec`` (the EES
conventions); the rule files and the indicator catalogue declare theirs beside their loaders on the same
base, ``SchemaModel``. A misspelled or unknown key, a column ``type``, ``privacy`` or ``normalise`` outside
its list, an EES measure ``unit`` not in ``UNITS``, a value of the wrong YAML type: each is a
``SchemaError`` at load time naming the file and the key path, e.g.
``schemas/ssda903.yaml: tables.episodes.columns[3] (RNE): unknown key 'requried' (did you mean 'required'?)``.
YAML anchors and merge keys are resolved before validation. ``Collection.spec`` is the file's mapping as
validated; ``Collection.declared`` the typed model.
"""
from __future__ import annotations

import copy
import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import pyarrow as pa
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

ARROW_TYPES = {
    "string": pa.string(),
    "date": pa.date32(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}
DUCKDB_TYPES = {"string": "VARCHAR", "date": "DATE", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
PRIVACY_ACTIONS = {None, "pseudonymise", "pseudonymise_national", "month", "postcode_district", "drop"}
DATE_FORMAT = "%Y-%m-%d"   # strptime format of dates in a collection's files unless it declares date_format
# What kind of value a column holds, for the cosmetic normalisation before validation (transforms/ingest/
# normalise.py); declared as ``normalise:`` where the default derived from type, codes and privacy is wrong.
NORMALISE_KINDS = ("code", "id", "postcode", "boolean", "number", "date", "text")
# unit -> (min, max, what it is). Bounds are what no published figure of that unit can break.
UNITS = {  # EES measure units
    "count": (0, None, "number of children, workers or events (EES rounds many to the nearest 10)"),
    "percent": (0, 100, "percentage"),
    "rate": (0, None, "rate per 10,000 (or as the measure name says)"),
    "fte": (0, None, "full-time equivalent"),
    "days": (0, None, "days"),
    "ratio": (0, None, "ratio (e.g. cases per case-holding FTE)"),
    "amount": (0, None, "amount in pounds"),
    "number": (None, None, "number (may be negative)"),
}
# The row checks (transforms/ingest/validate.py) a column's ``dfe_rules:`` may give a DfE rule code.
DFE_RULE_CHECKS = ("required", "code_list", "date", "whole_number", "boolean", "pattern")


class SchemaError(ValueError):
    """A schema file is malformed; raised at load time so a bad schema never reaches a DAG run."""


# -- reading a file: YAML, then a typed model that refuses what it does not know -----------------------------
FORMATS = ("csv", "xml", "xlsx", "ees_csv", "ods")                 # how a collection's files come
KINDS = ("return", "reference", "ees", "published")         # see Collection.kind
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)     # libyaml when built in: the same result, ~10x faster
M = TypeVar("M", bound="SchemaModel")


def shown(path: Path | str) -> str:
    """A schema file as messages name it: relative to the repository (``schemas/ssda903.yaml``) when inside it."""
    path = Path(path)
    try:
        return path.resolve().relative_to(SCHEMA_DIR.parent).as_posix()
    except ValueError:
        return str(path)


def read_yaml(path: Path | str) -> Any:
    """The YAML document of a schema file (anchors and ``<<`` merge keys resolved); SchemaError if it is not
    YAML, naming the file and line."""
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SchemaError(f"{shown(path)}:{at} not valid YAML: {problem}") from None


def parse(model: type[M], data: Any, path: Path | str) -> M:
    """``data`` (a file's YAML) as ``model``; SchemaError naming the file and the key path of every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err, data) for err in exc.errors(include_url=False)]
        raise SchemaError("\n".join(f"{shown(path)}: {p}" for p in dict.fromkeys(problems))) from None


class SchemaModel(BaseModel):
    """Base of every schema file model. Unknown keys are refused (naming the closest known one); values are
    taken as YAML typed them (strict: ``"true"`` is not true, ``"2024"`` is not 2024, whole numbers are
    numbers); the docstring under a field documents it. To add a key: declare it as a field, with a type,
    a default if optional and a docstring, then read it where it is used."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = _keys_of(cls)
            unknown = [k for k in data if k not in known]
            if unknown:
                raise PydanticCustomError("unknown_key", "{text}", {"text": _unknown_keys(data, unknown, known)})
        return data


_KEYS: dict[type, tuple[str, ...]] = {}


def _keys_of(model: type[BaseModel]) -> tuple[str, ...]:
    if model not in _KEYS:
        _KEYS[model] = tuple(f.alias or name for name, f in model.model_fields.items())
    return _KEYS[model]


def _unknown_keys(data: dict, unknown: list, known: tuple[str, ...]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if close:
            parts.append(f"{key!r} (did you mean {close[0]!r}?)")
        elif data[key] is None and " " in str(key):  # {description: a, b c} reads as {description: a, "b c": null}
            parts.append(f"{key!r} (a comma in an unquoted value? quote the value)")
        else:
            parts.append(repr(key))
    return f"unknown key{'s' if len(parts) > 1 else ''} {', '.join(parts)}"


_TYPE_WORDS = {"string_type": "text", "int_type": "a whole number", "float_type": "a number", "bool_type": "true or false",
               "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping"}


def _problem(err: dict, data: Any) -> str:
    """One validation error as ``key.path[3] (label): what is wrong`` (the label names a list item by its
    ``name``, ``code`` or ``id``, or a change by its table and column)."""
    loc, kind = list(err["loc"]), err["type"]
    if kind in ("unknown_key", "schema_whole"):
        where = _key_path(loc, data)
        return f"{where + ': ' if where else ''}{err['msg']}"
    key = loc.pop() if loc else None
    if key == "[key]":       # a mapping's key of the wrong type: loc ends (..., key, '[key]')
        key = loc.pop()
        where = _key_path(loc, data)
        if kind == "literal_error":
            return (f"{where + ': ' if where else ''}unknown key {key!r} "
                    f"(one of {err['ctx']['expected'].replace(' or ', ', ')})")
        return f"{where + ': ' if where else ''}key {key!r} should be {_TYPE_WORDS.get(kind, kind)}"
    if isinstance(key, int):  # a list item or a year: the path names it
        loc.append(key)
        key = None
    where = _key_path(loc, data)
    lead = f"{where}: " if where else ""
    if kind == "missing":
        return f"{lead}missing key {key!r}"
    got = err.get("input")
    named = "value" if key is None else str(key)
    if kind == "literal_error":
        return f"{lead}unknown {named} {got!r} (one of {err['ctx']['expected'].replace(' or ', ', ')})"
    if kind in _TYPE_WORDS:
        return f"{lead}{named} should be {_TYPE_WORDS[kind]}, not {_shown_value(got)}"
    if kind in ("string_too_short", "too_short"):
        return f"{lead}{named} should not be empty"
    if kind == "string_pattern_mismatch":
        return f"{lead}{named} {got!r} should match {err['ctx']['pattern']}"
    return f"{lead}{named}: {err['msg']}"


def _shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key_path(loc: list, data: Any) -> str:
    out, node = "", data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            out += f"[{part}]" + _label(node)
        elif isinstance(node, dict) and part in node:
            node = node[part]
            out += f"{'.' if out else ''}{part}"
        # anything else is pydantic's own step (a validator), not a key of the file
    return out


def _label(item: Any) -> str:
    if not isinstance(item, dict):
        return ""
    if "table" in item:  # a change
        return f" ({item['table']}{'.' + str(item['column']) if item.get('column') else ''})"
    for key in ("name", "code", "id"):
        if isinstance(item.get(key), (str, int)) and not isinstance(item.get(key), bool):
            return f" ({item[key]})"
    return ""


def invalid(text: str, whole: bool = False) -> PydanticCustomError:
    """The error a model's validator raises: a problem of one value (reported under its key) or of the
    ``whole`` mapping (a model validator: reported under the mapping's path)."""
    return PydanticCustomError("schema_whole" if whole else "schema_value", text.replace("{", "{{").replace("}", "}}"))


# -- value types ----------------------------------------------------------------------------------------
def _code_list(value: Any) -> Any:
    if isinstance(value, dict):
        codes, labels = list(value), list(value.values())
    elif isinstance(value, list):
        codes, labels = value, []
    else:
        raise invalid(f"should be a list of codes or a mapping of code to label, not {_shown_value(value)}")
    if any(isinstance(k, bool) for k in codes):  # YAML 1.1 reads YES, NO, Y, N, ON, OFF as booleans
        raise invalid(f"code list {codes} has a boolean: quote codes such as \"YES\" and \"NO\"")
    bad = [k for k in codes if not isinstance(k, (str, int))]
    if bad:
        raise invalid(f"codes should be text, not {_shown_value(bad)}")
    if any(isinstance(v, bool) for v in labels):
        raise invalid("a label is a boolean: quote labels such as \"Yes\" and \"No\"")
    bad = [v for v in labels if not isinstance(v, str)]
    if bad:
        raise invalid(f"labels should be text (\"\" for none), not {_shown_value(bad)}")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise invalid(f"{value!r} is not a regular expression: {exc}") from None
    return value


def _month_day(value: str) -> str:
    try:
        if not re.fullmatch(r"\d{2}-\d{2}", value):
            raise ValueError
        date.fromisoformat(f"2000-{value}")
    except ValueError:
        raise invalid(f"{value!r} should be a day of the year as MM-DD") from None
    return value


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# A code list: [codes] or {code: label}; codes are text (YAML whole numbers are taken as their digits).
Codes = Annotated[Any, BeforeValidator(_code_list)]
Regex = Annotated[str, AfterValidator(_regex)]
MonthDay = Annotated[str, AfterValidator(_month_day)]      # "03-31"
OneOrMore = Annotated[list[str], BeforeValidator(_one_or_more), Field(min_length=1)]  # "x" or [x, y]
Text = Annotated[str, Field(min_length=1)]                  # text that may not be empty
ColumnType = Literal[tuple(ARROW_TYPES)]
Privacy = Literal[tuple(sorted(p for p in PRIVACY_ACTIONS if p))]
NormaliseKind = Literal[NORMALISE_KINDS]
DfeRuleCheck = Literal[DFE_RULE_CHECKS]
Unit = Literal[tuple(UNITS)]


# -- collection files: returns and reference lists ----------------------------------------------------------
class ColumnFields(SchemaModel):
    """What a column declares besides its name (also the body of a change's ``add_column``)."""
    as_: str | None = Field(None, alias="as")
    """Catalogue column name (default: the source name in lower case)."""
    type: ColumnType = "string"
    """Value type: string, date, integer, number or boolean (Parquet and DuckDB types follow)."""
    required: bool = False
    """The field must be present and not empty in every row."""
    codes: Codes | None = None
    """Valid values: a list of codes or a mapping code -> label."""
    labelled_codes: bool = False
    """Templates may write the label instead of the code (XLSX and reference readers decode it)."""
    aliases: list[str] = []
    """Other spellings of the source heading (XLSX and reference readers)."""
    pattern: Regex | None = None
    """Regular expression every value must match."""
    max_length: Annotated[int, Field(ge=1)] | None = None
    """Most characters a value may have (after trimming): a longer one is quarantined, never loaded (an Ofsted
    URN is 7 digits, a child's LA id at most 10 characters as DfE specifies)."""
    min: float | None = None
    """Smallest valid value (integer and number columns)."""
    max: float | None = None
    """Largest valid value (integer and number columns)."""
    privacy: Privacy | None = None
    """How the value is kept (transforms/ingest/privacy.py): pseudonymise (keyed hash scoped to the council),
    pseudonymise_national (keyed hash across councils: UPN, social worker), month (a date kept to the month),
    postcode_district, drop; none: kept as sent."""
    normalise: NormaliseKind | None = None
    """Kind of value for the cosmetic normalisation before validation (transforms/ingest/normalise.py);
    none: derived from type, codes and privacy."""
    dfe_rules: dict[DfeRuleCheck, Text] | None = None
    """DfE's validation-rule code for a row check of this column, by check (``DFE_RULE_CHECKS``), e.g.
    ``{code_list: "103"}``: the error report gives a row failing that check DfE's code and message."""
    xml: OneOrMore | None = None
    """Path of the value below the table's XML element (a list: alternative paths, the first present wins);
    default: the column name."""
    case: Literal["sentence"] | None = None
    """Even out capitalisation before validation (reference reader): sentence = first letter upper case, the
    rest lower ("Very Close" -> "Very close")."""
    description: str = ""
    """What the column holds, for the column dictionary."""

    @model_validator(mode="after")
    def _bounds(self):
        if self.min is not None and self.max is not None and self.min > self.max:
            raise invalid(f"min {self.min:g} is above max {self.max:g}", whole=True)
        return self


class ColumnSpec(ColumnFields):
    """One column of a table, as the source names it."""
    name: Text
    """The field as the source names it (CSV heading, XML element, XLSX heading)."""


class TableXml(SchemaModel):
    """Where a table's rows sit in an XML message."""
    path: str | None = None
    """Path of the table's element below the record ("" for the record itself)."""
    value: str | None = None
    """The column holding the element's own text (one-value elements such as Disability)."""
    record: str | None = None
    """Record element of this table when not the collection's."""
    skip_empty: bool = False
    """Leave out elements whose own columns are all empty."""


class TableXlsx(SchemaModel):
    """Where a table sits in an XLSX workbook."""
    sheet: str | None = None
    """Sheet title (default: the table name), matched without case, spaces or punctuation."""
    aliases: list[str] = []
    """Other sheet titles seen in templates."""
    header_match: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Share of the declared columns a row must name to be taken as the header row."""


class Repeat(SchemaModel):
    """Numbered groups of source columns (SN1, SNP, SN2, ...) unpivoted to one row per group (reference reader)."""
    pattern: Regex
    """Heading of a group's first column; its first group captures the number."""
    index: str
    """Column receiving the number."""
    value: str
    """Column receiving the first column's value."""
    followed_by: list[str] = []
    """Columns receiving the values of the columns after it, in order."""


class TableSpec(SchemaModel):
    """One table of a collection (a CSV file, an XML block, an XLSX sheet)."""
    description: str = ""
    """What one row is."""
    keys: list[str] = []
    """Columns (or XML sequence keys from ``xml.levels``) that identify a row."""
    columns: Annotated[list[ColumnSpec], Field(min_length=1)]
    """The columns, in source order."""
    first_year: int | None = None
    """First return year the table is collected (none: from the start)."""
    last_year: int | None = None
    """Last return year the table is collected (none: still collected)."""
    xml: TableXml | None = None
    xlsx: TableXlsx | None = None
    repeat: Repeat | None = None

    @model_validator(mode="after")
    def _consistent(self):
        for what, values in (("name", [c.name for c in self.columns]),
                             ("catalogue name", [c.as_ or c.name.lower() for c in self.columns])):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise invalid(f"column {what} {', '.join(map(repr, twice))} declared twice", whole=True)
        if self.first_year is not None and self.last_year is not None and self.first_year > self.last_year:
            raise invalid(f"first_year {self.first_year} is after last_year {self.last_year}", whole=True)
        if self.repeat:
            names = {c.name for c in self.columns}
            missing = [n for n in (self.repeat.index, self.repeat.value, *self.repeat.followed_by) if n not in names]
            if missing:
                raise invalid(f"repeat names {', '.join(map(repr, missing))}, not columns of the table", whole=True)
        return self


# Keys of a change that alter one column, and those that alter the table (a change without ``column``).
COLUMN_CHANGES = ("add_column", "drop_column", "codes", "add_codes", "drop_codes", "type", "required", "pattern",
                  "min", "max", "privacy")
TABLE_CHANGES = ("first_year", "last_year", "keys")


class Change(SchemaModel):
    """One change of a table from a return year on (``changes: {year: [change, ...]}``)."""
    table: str
    """The table changed."""
    column: str | None = None
    """The column changed; none: the change is to the table (first_year, last_year, keys, description)."""
    note: str | None = None
    """What changed, shown in the column dictionary and the table's notes."""
    add_column: ColumnFields | None = None
    """A column added that year (named by ``column``)."""
    drop_column: bool = False
    """The column is no longer collected."""
    codes: Codes | None = None
    """The column's code list replaced."""
    add_codes: Codes | None = None
    """Codes added to the column's list."""
    drop_codes: Codes | None = None
    """Codes withdrawn from the column's list."""
    type: ColumnType | None = None
    required: bool | None = None
    pattern: Regex | None = None
    min: float | None = None
    max: float | None = None
    privacy: Privacy | None = None
    description: str | None = None
    """The column's description (with ``column``) or the table's (without)."""
    first_year: int | None = None
    last_year: int | None = None
    keys: list[str] | None = None

    @model_validator(mode="after")
    def _one_thing(self):
        given = self.model_fields_set
        if self.column is None and given & set(COLUMN_CHANGES):
            raise invalid(f"{', '.join(sorted(given & set(COLUMN_CHANGES)))}: a change to a column names it with "
                        "`column`", whole=True)
        if self.column is not None and given & set(TABLE_CHANGES):
            raise invalid(f"{', '.join(sorted(given & set(TABLE_CHANGES)))}: a change to the table has no `column`",
                        whole=True)
        for whole in ("add_column", "drop_column"):
            others = given & (set(COLUMN_CHANGES) | {"description"}) - {whole}
            if whole in given and others:
                raise invalid(f"{whole} comes alone; {', '.join(sorted(others))} "
                            f"{'belong inside it' if whole == 'add_column' else 'cannot apply'}", whole=True)
        return self


class XmlHeader(SchemaModel):
    """Where the LA code and the year sit in an XML message's header (paths from the root)."""
    la_code: str | None = None
    year: str | None = None
    reference_date: str | None = None
    collection: str | None = None
    """Path of the collection's name in the header."""
    collection_value: str | None = None
    """The name a message of this collection carries there (CIN, SEN2, ...)."""


class CollectionXml(SchemaModel):
    """How a collection's XML message is read into its tables."""
    root: str
    """Root element."""
    record: str
    """Path of the repeating record (a child, a worker) below the root."""
    header: XmlHeader | None = None
    inherit: dict[str, str] = {}
    """Columns every table takes from its record: column -> path below the record."""
    levels: dict[str, str] = {}
    """Repeating blocks whose position keys the tables below them: element -> sequence key."""


class CollectionSpec(SchemaModel):
    """What every collection file declares."""
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    """Collection id (lower case, digits and _)."""
    kind: str | None = None
    title: Text
    owner: Text
    """Who collects or publishes it."""
    cadence: Text
    """How often, in words (alerts read the month from it: 'annual to 31 March')."""
    grain: Text
    """What one row is, in words."""
    formats: Annotated[list[Literal[FORMATS]], Field(min_length=1)]
    """File formats it comes in: csv, xml, xlsx, ees_csv."""


class ReturnSpec(CollectionSpec):
    """A return sent by councils (``kind: return``, the default) or a national reference list
    (``kind: reference``, landed under LANDING/reference/<id>/)."""
    kind: Literal["return", "reference"] = "return"
    due: str | None = None
    """When a return is due: MM-DD after the year ends (alerts), or words ('on request')."""
    relation_prefix: str | None = None
    """Prefix of the catalogue relations (default: the id)."""
    date_format: str = DATE_FORMAT
    """strptime format of dates in the files."""
    first_year: int | None = None
    """First return year collected."""
    child_key: str | None = None
    """The field identifying a child (documentation)."""
    unconfirmed: bool = False
    """Declared from public descriptions, not checked against a real file."""
    codes: dict[str, Codes] = {}
    """Named code lists, referred to by YAML anchors (``codes: *ethnicity``)."""
    xml: CollectionXml | None = None
    tables: Annotated[dict[str, TableSpec], Field(min_length=1)]
    changes: dict[int, list[Change]] = {}
    """Changes by return year (the year ending 31 March); each applies from that year on."""
    reference_day: MonthDay | None = None
    """Census day: a header ReferenceDate on this day gives the return year (default 03-31)."""
    term_tables: dict[str, str] | None = None
    """Termly returns: word in the file name -> table."""
    year_from_dates: dict[str, list[str]] = {}
    """CSV returns without a year: table -> date columns whose latest value (in the folder) dates the return."""

    @model_validator(mode="after")
    def _references(self):
        tables = self.tables
        for year, changes in self.changes.items():
            for change in changes:
                if change.table not in tables:
                    raise invalid(f"change for {year} names unknown table {change.table!r}", whole=True)
        for word, table in (self.term_tables or {}).items():
            if table not in tables:
                raise invalid(f"term_tables {word!r} names unknown table {table!r}", whole=True)
        for table, columns in self.year_from_dates.items():
            if table not in tables:
                raise invalid(f"year_from_dates names unknown table {table!r}", whole=True)
            names = {c.name for c in tables[table].columns}
            missing = [c for c in columns if c not in names]
            if missing:
                raise invalid(f"year_from_dates: {table} has no column {', '.join(missing)}", whole=True)
        return self


class Period(SchemaModel):
    end: MonthDay = "03-31"
    """Day a period ends (03-31: the year to 31 March; 09-30: the workforce census; 06-30: mid-year)."""


class Publication(SchemaModel):
    months_after_period_end: Annotated[int, Field(ge=0)]
    """Months after the period end the figures became public (early warning never uses them before)."""


class Measure(SchemaModel):
    """One measure column of an EES file."""
    unit: Unit = "number"
    """count, percent, rate, fte, days, ratio, amount or number (UNITS: each gives the default bounds)."""
    description: str | None = None
    min: float | None = None
    """Smallest valid value (default: the unit's)."""
    max: float | None = None
    """Largest valid value (default: the unit's; null: none)."""
    aliases: list[str] = []
    """Other names the measure has in some editions of the file (a later release renaming it): read as
    this measure, lower case as the EES reader names columns."""


class Versions(SchemaModel):
    """A file that gives a period's figures in more than one version, in a breakdown column (KS2's
    ``version``: Provisional, Final, Revised): the one first known is used, never a later revision."""
    breakdown: Text
    """The breakdown column naming the version."""
    order: Annotated[list[str], Field(min_length=1)]
    """Versions earliest first; a council and period's figure is the first of these the file holds."""


class EesShared(SchemaModel):
    """The EES conventions every EES file shares (``schemas/published.yaml``); an ees schema may override them."""
    relation: str | None = None
    """Catalogue relation of the long form (published_statistics)."""
    key_columns: list[str] | None = None
    """Columns that identify a row besides its breakdowns."""
    required_columns: list[str] | None = None
    """Columns every EES file has."""
    suppression_symbols: dict[str, str] | None = None
    """Symbols standing for a suppressed value -> meaning."""
    default_publication_lag_months: Annotated[int, Field(ge=0)] | None = None
    """Months after the period end a file no schema claims is taken as published."""


class EesSpec(EesShared, CollectionSpec):
    """One published EES dataset (``kind: ees``, ``schemas/ees/*.yaml`` and ``schemas/population.yaml``)."""
    kind: Literal["ees"]
    dataset: Text
    """Dataset id in published_statistics (what indicators select by)."""
    match: OneOrMore
    """File name pattern (fnmatch, without case); a list gives alternative spellings of that one file."""
    catalogue_entry: str | None = None
    """Short name in the catalogue's list of datasets."""
    publication: str | None = None
    """EES publication the file comes from."""
    source: str | None = None
    """Return the figures come from."""
    period: Period = Period()
    published: Publication | None = None
    """When figures became public (default: the published collection's lag)."""
    confirmed: bool = False
    """Measures and breakdowns read from a real file (false: declared from public descriptions)."""
    breakdowns: list[str] = []
    """Filter columns (the rest of a row's identity besides the key columns)."""
    measures: dict[str, Measure | None] = {}
    """Measure columns (as the file names them) -> unit and description."""
    view: str | None = None
    """Catalogue view name (default: the id)."""
    versions: Versions | None = None
    """How the file tells a figure as first known from its revisions (none: each period once, as revised)."""
    data_set_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z-]{8,64}$")] | None = None
    """The data set's id in DfE's EES public API: the ``fetch_ees`` DAG polls it for new versions."""


class DatasetEntry(SchemaModel):
    """A dataset the published collection recognises (declared by an ees schema)."""
    match: OneOrMore
    title: str | None = None
    source: str | None = None
    period: Period | None = None
    published: Publication | None = None


class PublishedSpec(CollectionSpec):
    """The EES conventions (``kind: published``) and catch-all for EES files no ees schema claims."""
    kind: Literal["published"] = "published"
    relation: Text
    key_columns: Annotated[list[str], Field(min_length=1)]
    required_columns: Annotated[list[str], Field(min_length=1)]
    suppression_symbols: dict[str, str]
    default_publication_lag_months: Annotated[int, Field(ge=0)]
    datasets: dict[str, DatasetEntry] = {}
    """Filled from the ees schemas when they load."""


SPECS: dict[str, type[CollectionSpec]] = {"return": ReturnSpec, "reference": ReturnSpec, "ees": EesSpec,
                                          "published": PublishedSpec}


def parse_collection(data: Any, path: Path | str) -> CollectionSpec:
    """A collection file's YAML as its typed model (by ``kind``); SchemaError naming the file and key path."""
    if not isinstance(data, dict):
        raise SchemaError(f"{shown(path)}: should be a mapping of keys (id, title, tables, ...), not {_shown_value(data)}")
    kind = data.get("kind") or ("published" if "datasets" in data else "return")
    if kind not in SPECS:
        raise SchemaError(f"{shown(path)}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    return parse(SPECS[kind], data, path)


@dataclass(frozen=True)
class Column:
    name: str
    out: str
    type: str = "string"
    required: bool = False
    codes: dict[str, str] | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    privacy: str | None = None
    max_length: int | None = None    # most characters a value may have (ColumnFields.max_length)
    xml: tuple[str, ...] = ()
    description: str = ""
    normalise: str | None = None     # one of NORMALISE_KINDS; None: derived (transforms.ingest.normalise.kind_of)
    # DfE's validation-rule code for a row check of this column, by check (DFE_RULE_CHECKS), e.g.
    # {code_list: "103"}: the error report gives a quarantined row that code and DfE's message.
    dfe_rules: tuple[tuple[str, str], ...] = ()

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]

    @property
    def kept(self) -> bool:
        return self.privacy != "drop"


@dataclass(frozen=True)
class Table:
    collection: str
    name: str
    relation: str
    description: str
    keys: tuple[str, ...]
    columns: tuple[Column, ...]
    year: int | None = None
    first_year: int | None = None
    last_year: int | None = None
    xml_path: str | None = None
    xml_value: str | None = None
    xml_skip_empty: bool = False
    notes: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.relation} has no column {name}")

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def collected_in(self, year: int) -> bool:
        return (self.first_year is None or year >= self.first_year) and (
            self.last_year is None or year <= self.last_year)

    def arrow_schema(self) -> pa.Schema:
        """Types of the Parquet files for this table (partition keys live in the path, not the file)."""
        fields = [pa.field(c.out, c.arrow_type) for c in self.columns if c.kept]
        fields += [pa.field(k, pa.int32()) for k in self.sequence_keys]
        fields += [pa.field("source_row", pa.int64()), pa.field("load_id", pa.string())]
        return pa.schema(fields)

    @property
    def sequence_keys(self) -> list[str]:
        """Ordinal keys for nested XML tables (e.g. cin_episode_seq) that are not source columns."""
        return [k for k in self.keys if k not in self.names]


@dataclass
class Collection:
    id: str
    title: str
    owner: str
    cadence: str
    grain: str
    formats: tuple[str, ...]
    spec: dict[str, Any]
    path: Path
    base_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    changes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    declared: CollectionSpec | None = None      # the file as its typed model (ReturnSpec, EesSpec, PublishedSpec)

    @property
    def kind(self) -> str:
        """return (sent by councils), reference (national lookups under LANDING/reference/<id>/), ees (one
        published EES dataset) or published (the catch-all for EES files no ees schema claims)."""
        if self.declared is not None:
            return self.declared.kind
        return self.spec.get("kind") or ("published" if "datasets" in self.spec else "return")

    @property
    def is_published(self) -> bool:
        return self.kind in ("published", "ees")

    @property
    def dataset(self) -> str | None:
        """An ees collection's dataset id in ``published_statistics`` (what indicators select by)."""
        return self.declared.dataset if isinstance(self.declared, EesSpec) else None

    @property
    def relation_prefix(self) -> str:
        return getattr(self.declared, "relation_prefix", None) or self.id

    @property
    def date_format(self) -> str:
        return getattr(self.declared, "date_format", None) or DATE_FORMAT

    @property
    def table_names(self) -> list[str]:
        return list(self.base_tables)

    @property
    def change_years(self) -> list[int]:
        return sorted(self.changes)

    def relation(self, table: str) -> str:
        return f"{self.relation_prefix}_{table}"

    def table(self, name: str, year: int | None = None) -> Table:
        """The table as collected in ``year`` (``None``: the latest declared specification)."""
        if name not in self.base_tables:
            raise KeyError(f"{self.id} has no table {name!r}; it has {', '.join(self.base_tables)}")
        raw = copy.deepcopy(self.base_tables[name])
        notes = []
        for change_year in self.change_years:
            if year is not None and change_year > year:
                break
            for i, change in enumerate(self.changes[change_year]):
                if change["table"] == name:
                    _apply_change(raw, change, f"{shown(self.path)}: changes.{change_year}[{i}]{_label(change)}")
                    if change.get("note"):
                        notes.append(f"{change_year}: {change['note']}")
        return _build_table(self, name, raw, year, tuple(notes))

    def tables(self, year: int | None = None) -> list[Table]:
        return [self.table(n, year) for n in self.base_tables]

    def dataset_for(self, filename: str) -> tuple[str, dict[str, Any]]:
        """Published statistics: which declared dataset a file is (falls back to its stem)."""
        for dataset_id, ds in self.spec.get("datasets", {}).items():
            patterns = [ds["match"]] if isinstance(ds["match"], str) else ds["match"]
            if any(fnmatch.fnmatch(filename.lower(), p.lower()) for p in patterns):
                return dataset_id, ds
        stem = Path(filename).stem.lower().replace("-", "_").replace(" ", "_")
        return stem, {}


def _apply_change(raw: dict[str, Any], change: dict[str, Any], where: str) -> None:
    """Apply one validated ``Change`` to a table's raw declaration; ``where`` names it in errors."""
    columns = {c["name"]: c for c in raw["columns"]}
    name = change.get("column")
    if name is None:
        raw.update({k: v for k, v in change.items() if k not in ("table", "note")})
        return
    if change.get("add_column"):
        if name in columns:
            raise SchemaError(f"{where}: adds column {name!r}, which {change['table']} already has")
        raw["columns"].append(dict(change["add_column"], name=name))
        return
    if name not in columns:
        raise SchemaError(f"{where}: {change['table']} has no column {name!r} by then")
    if change.get("drop_column"):
        raw["columns"] = [c for c in raw["columns"] if c["name"] != name]
        return
    col = columns[name]
    if "codes" in change:
        col["codes"] = copy.deepcopy(change["codes"])
    codes = _codes(col.get("codes")) or {}
    for code in change.get("drop_codes", []):
        codes.pop(str(code), None)
    for code, label in _codes(change.get("add_codes")).items() if change.get("add_codes") else []:
        codes[code] = label
    if "drop_codes" in change or "add_codes" in change:
        col["codes"] = codes
    for key in ("type", "required", "pattern", "min", "max", "description", "privacy"):
        if key in change:
            col[key] = change[key]


def _codes(codes: Any) -> dict[str, str] | None:
    """A validated code list (``Codes``) as {code: label}."""
    if codes is None:
        return None
    if isinstance(codes, dict):
        return {str(k): str(v) for k, v in codes.items()}
    return {str(c): "" for c in codes}


def _build_table(coll: Collection, name: str, raw: dict[str, Any], year: int | None, notes) -> Table:
    columns = []
    for c in raw["columns"]:  # validated by ColumnSpec: type, privacy, normalise and dfe_rules are known
        xml = c.get("xml") or c["name"]
        dfe_rules = c.get("dfe_rules") or {}
        columns.append(Column(
            name=c["name"], out=c.get("as") or c["name"].lower(), type=c.get("type", "string"),
            required=bool(c.get("required", False)), codes=_codes(c.get("codes")), pattern=c.get("pattern"),
            min=c.get("min"), max=c.get("max"), privacy=c.get("privacy"), max_length=c.get("max_length"),
            xml=tuple(xml) if isinstance(xml, list) else (xml,), description=c.get("description", ""),
            normalise=c.get("normalise"), dfe_rules=tuple((k, str(v)) for k, v in dfe_rules.items())))
    xml = raw.get("xml", {})
    keys = tuple(raw.get("keys", []))
    for key in keys:
        if key not in {c.name for c in columns} and key not in coll.spec.get("xml", {}).get("levels", {}).values():
            raise SchemaError(f"{shown(coll.path)}: tables.{name}: key {key!r} is neither a column nor an XML level")
    return Table(
        collection=coll.id, name=name, relation=coll.relation(name), description=raw.get("description", ""),
        keys=keys, columns=tuple(columns), year=year,
        first_year=raw.get("first_year"), last_year=raw.get("last_year"),
        xml_path=xml.get("path"), xml_value=xml.get("value"), xml_skip_empty=bool(xml.get("skip_empty")),
        notes=notes)


def load_collection(path: Path | str) -> Collection:
    """One collection file, validated against its model (``SchemaError`` naming the file and key path) and
    resolved for every year it declares changes, so a bad change fails here rather than on first use."""
    spec = read_yaml(path)
    declared = parse_collection(spec, path)
    coll = Collection(
        id=declared.id, title=declared.title, owner=declared.owner, cadence=declared.cadence,
        grain=declared.grain, formats=tuple(declared.formats), spec=spec, path=Path(path),
        base_tables=spec.get("tables", {}), changes={int(y): list(ch) for y, ch in (spec.get("changes") or {}).items()},
        declared=declared)
    for name in coll.base_tables:  # fail fast on every declared year, not on first use
        for year in [None, *coll.change_years]:
            coll.table(name, year)
    return coll


def measures(coll: Collection) -> dict[str, dict]:
    """Declared measures (lower case, as the EES reader names columns) with their unit (validated by
    ``Measure``: one of ``UNITS`` where given)."""
    return {str(name).lower(): dict(spec or {}) for name, spec in (coll.spec.get("measures") or {}).items()}


def breakdowns(coll: Collection) -> list[str]:
    return [str(b).lower() for b in coll.spec.get("breakdowns") or []]



EES_FOLDER = "ees"   # schemas/ees/*.yaml: one published EES dataset each (the only subfolder of collections)
EES_SHARED = ("relation", "key_columns", "required_columns", "suppression_symbols", "default_publication_lag_months")


@lru_cache(maxsize=None)
def _load_all(schema_dir: str) -> dict[str, Collection]:
    collections: dict[str, Collection] = {}
    paths = sorted(p for p in Path(schema_dir).glob("*.yaml") if p.name != COUNCILS_FILE.name)
    paths += sorted((Path(schema_dir) / EES_FOLDER).glob("*.yaml"))
    for path in paths:
        coll = load_collection(path)
        if coll.id in collections:
            raise SchemaError(f"{shown(path)}: collection id {coll.id!r} already declared in "
                              f"{shown(collections[coll.id].path)}")
        collections[coll.id] = coll
    _link_ees(collections)
    return collections


def _link_ees(collections: dict[str, Collection]) -> None:
    """Each ees collection reads with the catch-all ``published`` collection's EES conventions, and its
    dataset joins the catch-all's list, so a file is recognised the same whichever DAG runs."""
    published = next((c for c in collections.values() if c.kind == "published"), None)
    for coll in collections.values():
        if coll.kind != "ees":
            continue
        if published is None:
            raise SchemaError(f"{shown(coll.path)}: an ees collection needs the published collection's conventions")
        for key in EES_SHARED:
            coll.spec.setdefault(key, published.spec[key])
        entry = {k: coll.spec[k] for k in ("match", "title", "source", "period", "published") if k in coll.spec}
        coll.spec["datasets"] = {coll.dataset: entry}
        datasets = published.spec.setdefault("datasets", {})
        if coll.dataset in datasets and datasets[coll.dataset].get("collection") != coll.id:
            raise SchemaError(f"{shown(coll.path)}: dataset {coll.dataset!r} declared twice")
        datasets[coll.dataset] = {**entry, "collection": coll.id}


def ees_collection_of(dataset: str | None) -> str | None:
    """The ees collection that owns a published dataset (None: the catch-all ``published``)."""
    for coll in collections().values():
        if coll.kind == "ees" and coll.dataset == dataset:
            return coll.id
    return None


def collections(schema_dir: Path | None = None) -> dict[str, Collection]:
    """Every declared collection, by id (cached: schemas are read once per process)."""
    return _load_all(str(schema_dir or SCHEMA_DIR))


def collection(collection_id: str) -> Collection:
    try:
        return collections()[collection_id]
    except KeyError:
        raise KeyError(f"no schema for collection {collection_id!r}") from None


# -- councils: schemas/councils.yaml (not a collection: the councils every collection's rows belong to) ------
COUNCILS_FILE = SCHEMA_DIR / "councils.yaml"
LaCode = Annotated[str, Field(pattern=r"^\d{3}$")]
OnsCode = Annotated[str, Field(pattern=r"^E0[6-9]\d{6}$|^E10\d{6}$")]


class OtherOns(SchemaModel):
    code: OnsCode
    """Another ONS code the council's published rows carry."""
    years: Annotated[list[int], Field(min_length=2, max_length=2)]
    """First and last published ``time_period`` year (its first four digits) seen with that code."""


class Council(SchemaModel):
    """One council in ``schemas/councils.yaml`` (keyed by its 3-digit DfE code)."""
    ons: OnsCode
    """9-character ONS code (E06, E08, E09 or E10) the DfE rules compare placements with."""
    name: Text
    """Council name as DfE publishes it."""
    region_code: Annotated[str, Field(pattern=r"^E1[23]\d{6}$")]
    """Region (E12) or, in London, Inner/Outer London (E13) code, as EES files give it."""
    region: Text
    """Region name as EES files give it (Inner London, Outer London, North East, ...)."""
    from_: date | None = Field(default=None, alias="from")
    """First day of a council created by reorganisation (always 1 April)."""
    until: date | None = None
    """Last day of a council abolished by reorganisation (31 March)."""
    successors: list[LaCode] = []
    """Councils that took over an abolished council's area (its series continue in theirs)."""
    other_ons: list[OtherOns] = []
    """Other ONS codes under which the council's rows have been published."""

    @model_validator(mode="after")
    def _abolished_has_successors(self):
        if (self.until is None) != (not self.successors):
            raise invalid("a council with 'until' names its successors, and only then", whole=True)
        return self


class JointReturn(SchemaModel):
    """A code under which two councils publish one figure (credited to each member)."""
    code: Text
    """The combined code as EES files give it in ``old_la_code`` (``314 / 318``)."""
    ons: Text
    """The combined ONS code as EES files give it in ``new_la_code``."""
    name: Text
    """The combined name as EES files give it."""
    members: Annotated[list[LaCode], Field(min_length=2)]
    """The member councils' 3-digit codes."""
    note: Text
    """Why they return together."""


class CouncilsFile(SchemaModel):
    """``schemas/councils.yaml``: every council, how councils were reorganised, joint returns."""
    councils: dict[LaCode, Council]
    joint_returns: list[JointReturn] = []

    @model_validator(mode="after")
    def _links_known(self):
        codes = set(self.councils)
        named = [c for v in self.councils.values() for c in v.successors]
        named += [m for j in self.joint_returns for m in j.members]
        unknown = sorted(set(named) - codes)
        if unknown:
            raise invalid(f"successors or members not declared as councils: {', '.join(unknown)}", whole=True)
        return self

    def predecessors(self, code: str) -> list[str]:
        """Councils whose area passed (in whole or part) to ``code``."""
        return sorted(k for k, v in self.councils.items() if code in v.successors)

    def as_on(self, code: str, day: date) -> str:
        """The council ``code`` stood for on ``day``: itself, or, for a day before a reorganisation created
        it, its only predecessor (Ofsted's SIF list gives Dorset county's 2016 judgement the code of the
        Dorset created in 2019, 838, for 835). A code with several predecessors, or unknown, is kept."""
        council = self.councils.get(code)
        while council is not None and council.from_ and day < council.from_:
            before = self.predecessors(code)
            if len(before) != 1:
                break
            code, council = before[0], self.councils.get(before[0])
        return code


@lru_cache(maxsize=1)
def councils() -> CouncilsFile:
    """``schemas/councils.yaml`` parsed (``SchemaError`` naming the file and key path if malformed)."""
    return parse(CouncilsFile, read_yaml(COUNCILS_FILE), COUNCILS_FILE)
