"""Declarative collection schemas: the single description everything else is derived from.

A collection is one YAML file under ``schemas/``: a base specification of its tables and columns plus
``changes`` keyed by return year (the year ending 31 March). ``Collection.table(name, year)`` resolves the
base plus every change up to that year, so readers, GX suites, Parquet types and docs all see the same
year-aware specification.
"""
from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

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
# What kind of value a column holds, for the cosmetic normalisation before validation (transforms/ingest/
# normalise.py); declared as ``normalise:`` where the default derived from type, codes and privacy is wrong.
NORMALISE_KINDS = ("code", "id", "postcode", "boolean", "number", "date", "text")


class SchemaError(ValueError):
    """A schema file is malformed; raised at load time so a bad schema never reaches a DAG run."""


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
    xml: tuple[str, ...] = ()
    description: str = ""
    normalise: str | None = None     # one of NORMALISE_KINDS; None: derived (transforms.ingest.normalise.kind_of)

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

    @property
    def kind(self) -> str:
        """return (sent by councils), reference (national lookups under LANDING/reference/<id>/), ees (one
        published EES dataset) or published (the catch-all for EES files no ees schema claims)."""
        return self.spec.get("kind") or ("published" if "datasets" in self.spec else "return")

    @property
    def is_published(self) -> bool:
        return self.kind in ("published", "ees")

    @property
    def dataset(self) -> str | None:
        """An ees collection's dataset id in ``published_statistics`` (what indicators select by)."""
        return self.spec.get("dataset") if self.kind == "ees" else None

    @property
    def relation_prefix(self) -> str:
        return self.spec.get("relation_prefix", self.id)

    @property
    def date_format(self) -> str:
        return self.spec.get("date_format", "%Y-%m-%d")

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
            for change in self.changes[change_year]:
                if change["table"] == name:
                    _apply_change(raw, change)
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


def _apply_change(raw: dict[str, Any], change: dict[str, Any]) -> None:
    columns = {c["name"]: c for c in raw["columns"]}
    name = change.get("column")
    if name is None:
        raw.update({k: v for k, v in change.items() if k not in ("table", "note")})
        return
    if change.get("add_column"):
        raw["columns"].append(dict(change["add_column"], name=name))
        return
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
    if codes is None:
        return None
    keys = codes.keys() if isinstance(codes, dict) else codes
    if any(isinstance(k, bool) for k in keys):  # YAML 1.1 reads YES, NO, Y, N, ON, OFF as booleans
        raise SchemaError(f"code list {list(keys)} has a boolean: quote codes such as \"YES\" and \"NO\"")
    if isinstance(codes, dict):
        return {str(k): str(v) for k, v in codes.items()}
    return {str(c): "" for c in codes}


def _build_table(coll: Collection, name: str, raw: dict[str, Any], year: int | None, notes) -> Table:
    columns = []
    for c in raw["columns"]:
        if c.get("type", "string") not in ARROW_TYPES:
            raise SchemaError(f"{coll.path.name}: {name}.{c['name']} has unknown type {c.get('type')!r}")
        if c.get("privacy") not in PRIVACY_ACTIONS:
            raise SchemaError(f"{coll.path.name}: {name}.{c['name']} has unknown privacy {c.get('privacy')!r}")
        if c.get("normalise") not in (None, *NORMALISE_KINDS):
            raise SchemaError(f"{coll.path.name}: {name}.{c['name']} has unknown normalise {c.get('normalise')!r}")
        xml = c.get("xml", c["name"])
        columns.append(Column(
            name=c["name"], out=c.get("as", c["name"].lower()), type=c.get("type", "string"),
            required=bool(c.get("required", False)), codes=_codes(c.get("codes")), pattern=c.get("pattern"),
            min=c.get("min"), max=c.get("max"), privacy=c.get("privacy"),
            xml=tuple(xml) if isinstance(xml, list) else (xml,), description=c.get("description", ""),
            normalise=c.get("normalise")))
    xml = raw.get("xml", {})
    keys = tuple(raw.get("keys", []))
    for key in keys:
        if key not in {c.name for c in columns} and key not in coll.spec.get("xml", {}).get("levels", {}).values():
            raise SchemaError(f"{coll.path.name}: key {key!r} of {name} is neither a column nor an XML level")
    return Table(
        collection=coll.id, name=name, relation=coll.relation(name), description=raw.get("description", ""),
        keys=keys, columns=tuple(columns), year=year,
        first_year=raw.get("first_year"), last_year=raw.get("last_year"),
        xml_path=xml.get("path"), xml_value=xml.get("value"), xml_skip_empty=bool(xml.get("skip_empty")),
        notes=notes)


def load_collection(path: Path) -> Collection:
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for key in ("id", "title", "owner", "cadence", "grain", "formats"):
        if key not in spec:
            raise SchemaError(f"{Path(path).name}: missing {key!r}")
    coll = Collection(
        id=spec["id"], title=spec["title"], owner=spec["owner"], cadence=spec["cadence"], grain=spec["grain"],
        formats=tuple(spec["formats"]), spec=spec, path=Path(path),
        base_tables=spec.get("tables", {}),
        changes={int(y): list(ch) for y, ch in (spec.get("changes") or {}).items()})
    for year, changes in coll.changes.items():
        for change in changes:
            if change.get("table") not in coll.base_tables:
                raise SchemaError(f"{Path(path).name}: change for {year} names unknown table {change.get('table')!r}")
    for name in coll.base_tables:  # fail fast on every declared year, not on first use
        for year in [None, *coll.change_years]:
            coll.table(name, year)
    return coll


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

def measures(coll: Collection) -> dict[str, dict]:
    """Declared measures (lower case, as the EES reader names columns) with their unit."""
    out = {}
    for name, spec in (coll.spec.get("measures") or {}).items():
        spec = dict(spec or {})
        if spec.get("unit", "number") not in UNITS:
            raise SchemaError(f"{coll.path.name}: measure {name} has unknown unit {spec.get('unit')!r} "
                                     f"(one of {', '.join(UNITS)})")
        out[str(name).lower()] = spec
    return out


def breakdowns(coll: Collection) -> list[str]:
    return [str(b).lower() for b in coll.spec.get("breakdowns") or []]



EES_FOLDER = "ees"   # schemas/ees/*.yaml: one published EES dataset each (the only subfolder of collections)
EES_SHARED = ("relation", "key_columns", "required_columns", "suppression_symbols", "default_publication_lag_months")


@lru_cache(maxsize=None)
def _load_all(schema_dir: str) -> dict[str, Collection]:
    collections = {}
    paths = sorted(Path(schema_dir).glob("*.yaml")) + sorted((Path(schema_dir) / EES_FOLDER).glob("*.yaml"))
    for path in paths:
        coll = load_collection(path)
        if coll.id in collections:
            raise SchemaError(f"collection id {coll.id!r} declared twice")
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
            raise SchemaError(f"{coll.path.name}: an ees collection needs the published collection's conventions")
        for key in EES_SHARED:
            coll.spec.setdefault(key, published.spec[key])
        for key in ("dataset", "match"):
            if key not in coll.spec:
                raise SchemaError(f"{coll.path.name}: missing {key!r}")
        entry = {k: coll.spec[k] for k in ("match", "title", "source", "period", "published") if k in coll.spec}
        coll.spec["datasets"] = {coll.dataset: entry}
        datasets = published.spec.setdefault("datasets", {})
        if coll.dataset in datasets and datasets[coll.dataset].get("collection") != coll.id:
            raise SchemaError(f"dataset {coll.dataset!r} declared twice ({coll.path.name})")
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
