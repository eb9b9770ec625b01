"""Cosmetic variants of valid values, made canonical per column before validation.

Case-management exports and hand-edited spreadsheets write the same value many ways: a code through a
float type (``2.0``), in lower case (``c2``, ``wbri``), an id with spaces around it or a ``.0`` tail, a
postcode in any case and spacing, a boolean as ``Y``/``Yes``/``TRUE``. Each column says what kind of value
it holds, and that kind says what is cosmetic:

=============  ====================================================================================
kind           canonical form
=============  ====================================================================================
``code``       a value of the column's code list: upper-cased and a ``.0`` tail dropped, but only
               when that makes it a listed code (``c2`` -> ``C2``, ``1.0`` -> ``1``); anything else is
               left for validation to reject
``id``         trimmed, a whole-number ``.0`` tail dropped, upper-cased (``" c1001.0"`` -> ``C1001``)
``postcode``   upper case, one space before the inward code (``eg194ab`` -> ``EG19 4AB``); an outward
               code alone (``EG19``, ``E1``) is already a district and is kept
``boolean``    ``true`` / ``false`` from any spelling of true/false, yes/no, y/n, 1/0
``number``     a whole number written with a ``.0`` tail loses it (``3.0`` -> ``3``)
``date``       trimmed
``text``       trimmed
=============  ====================================================================================

The kind is the column's ``normalise:`` in ``schemas/`` where it declares one, else derived: identifiers
(``privacy: pseudonymise`` or ``pseudonymise_national``) are ``id``, ``privacy: postcode_district`` is
``postcode``, ``type: boolean`` is ``boolean``, a column with ``codes`` is ``code``, ``integer`` and
``number`` columns are ``number``, dates ``date``, the rest ``text``. Every value is trimmed and an empty
one becomes null. Nothing here rejects a value: a value no rule makes valid reaches validation as sent.

Vectorised with Arrow compute (C speed); ``normalise_table`` returns the table and how many values each
normalisation changed, per column (``{"CHILD: id": 2, "LS: code": 1}``), which the ledger records.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.schema import NORMALISE_KINDS as KINDS  # noqa: F401 (re-exported)
from transforms.schema import Column, Table

TRUE_SPELLINGS = ("true", "t", "yes", "y", "1")
FALSE_SPELLINGS = ("false", "f", "no", "n", "0")
_WHOLE_WITH_ZERO_TAIL = r"^([+-]?\d+)\.0+$"
_FULL_POSTCODE = r"^([A-Z]{1,2}\d[A-Z\d]?)(\d[A-Z]{2})$"


def kind_of(column: Column) -> str:
    """What kind of value ``column`` holds (see the module docstring)."""
    if column.normalise:
        return column.normalise
    if column.privacy in ("pseudonymise", "pseudonymise_national"):
        return "id"
    if column.privacy == "postcode_district":
        return "postcode"
    if column.type == "boolean":
        return "boolean"
    if column.codes:
        return "code"
    if column.type in ("integer", "number"):
        return "number"
    return "date" if column.type == "date" else "text"


def _trimmed(values: pa.Array) -> pa.Array:
    values = pc.utf8_trim_whitespace(values.cast(pa.string()))
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _drop_zero_tail(values: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(values, _WHOLE_WITH_ZERO_TAIL, r"\1")


def _code(values: pa.Array, codes: dict[str, str]) -> pa.Array:
    listed = pa.array(sorted(codes), pa.string())
    out = values
    for candidate in (pc.utf8_upper(values), _drop_zero_tail(values), pc.utf8_upper(_drop_zero_tail(values))):
        use = pc.and_kleene(pc.invert(pc.is_in(out, value_set=listed)), pc.is_in(candidate, value_set=listed))
        out = pc.if_else(use, candidate, out)
    return out


def _postcode(values: pa.Array) -> pa.Array:
    compact = pc.replace_substring_regex(pc.utf8_upper(values), r"\s+", "")
    return pc.replace_substring_regex(compact, _FULL_POSTCODE, r"\1 \2")


def _boolean(values: pa.Array) -> pa.Array:
    lowered = pc.utf8_lower(values)
    out = pc.if_else(pc.is_in(lowered, value_set=pa.array(TRUE_SPELLINGS)), pa.scalar("true"), values)
    return pc.if_else(pc.is_in(lowered, value_set=pa.array(FALSE_SPELLINGS)), pa.scalar("false"), out)


def normalise_column(values: pa.Array, column: Column) -> tuple[pa.Array, int]:
    """One column of raw text, canonical for its kind; and how many non-empty values changed beyond a trim.

    Raises nothing: values that no rule makes canonical pass through for validation to judge.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    trimmed = _trimmed(values)
    kind = kind_of(column)
    if kind == "code" and column.codes:
        out = _code(trimmed, column.codes)
    elif kind == "id":
        out = pc.utf8_upper(_drop_zero_tail(trimmed))
    elif kind == "postcode":
        out = _postcode(trimmed)
    elif kind == "boolean":
        out = _boolean(trimmed)
    elif kind == "number":
        out = _drop_zero_tail(trimmed)
    else:
        out = trimmed
    changed = pc.sum(pc.cast(pc.fill_null(pc.not_equal(out, trimmed), False), pa.int64())).as_py() or 0
    return out, changed


def normalise_table(table: pa.Table, spec: Table) -> tuple[pa.Table, dict[str, int]]:
    """Every column of ``spec`` found in ``table`` (raw text, as a reader returns it), made canonical.

    Returns the table (other columns untouched) and the count of values changed per ``"FIELD: kind"``,
    only where it is not zero.
    """
    counts: dict[str, int] = {}
    for column in spec.columns:
        if column.name not in table.column_names:
            continue
        values, changed = normalise_column(table[column.name], column)
        table = table.set_column(table.column_names.index(column.name), column.name, values)
        if changed:
            counts[f"{column.name}: {kind_of(column)}"] = changed
    return table, counts
