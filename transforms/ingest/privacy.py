"""Child-level data is sensitive personal data: pseudonymise identifiers and keep no more than analysis needs.

Each column's treatment is declared in its schema (``privacy:``):

- ``pseudonymise``: keyed hash (HMAC-SHA256) of the LA code and the value, so a child keeps one token
  across returns and years of the same council, and no one without the key can reverse or link it;
- ``pseudonymise_national``: keyed hash of the value alone (UPN, social worker number link across LAs);
- ``month``: dates of birth kept to the first of the month;
- ``postcode_district``: postcodes cut to their outward code (district);
- ``drop``: not kept at all.

The key is ``CSRETURNS_PSEUDONYM_KEY`` or, failing that, ``REPO/.secrets/pseudonym.key`` created on
first use (mode 0600). Losing it breaks linkage of future loads to past ones: back it up with the
repository, never with shared extracts.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from transforms import settings
from transforms.schema import Table

KEY_ENV = "CSRETURNS_PSEUDONYM_KEY"
TOKEN_HEX = 20   # 80 bits: no collisions in practice at national scale (millions of children)
_SPACES = re.compile(r"\s+")


class Pseudonymiser:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("pseudonymisation key must be at least 16 bytes")
        self._key = key
        self._memo: dict[tuple[str, str], str] = {}  # a child's id recurs in every table of a return

    @classmethod
    def for_repository(cls, repo: Path) -> "Pseudonymiser":
        configured = settings.current().pseudonym_key
        if configured:
            return cls(configured.encode())
        path = Path(repo) / ".secrets" / "pseudonym.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(os.urandom(32).hex())
        return cls(path.read_text().strip().encode())

    def token(self, value: str, scope: str = "") -> str:
        return hmac.new(self._key, f"{scope}|{value}".encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX]

    def tokens(self, values: pd.Series, scope: str = "") -> pd.Series:
        """Vectorised over distinct values: a child's rows share one hash computation."""
        memo = self._memo
        mapping = {}
        for v in values.dropna().unique():
            key = (scope, str(v))
            token = memo.get(key)
            if token is None:
                token = memo[key] = self.token(key[1], scope)
            mapping[v] = token
        return values.map(mapping)


    def tokens_arrow(self, values: pa.Array | pa.ChunkedArray, scope: str = "") -> pa.Array:
        """``tokens`` on an Arrow column: one HMAC per distinct value (memoised across tables and files),
        spread back to the rows with Arrow's ``index_in``/``take``; empty cells stay empty."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        distinct = pc.unique(values.drop_null())
        memo = self._memo
        tokens = []
        for v in distinct.to_pylist():
            key = (scope, str(v))
            token = memo.get(key)
            if token is None:
                token = memo[key] = self.token(key[1], scope)
            tokens.append(token)
        return pc.take(pa.array(tokens, pa.string()), pc.index_in(values, value_set=distinct))


def postcode_district(values: pd.Series) -> pd.Series:
    compact = values.str.upper().str.replace(_SPACES, "", regex=True)
    return compact.where(compact.str.len() > 4, None).str[:-3]


def month_of(values: pd.Series) -> pd.Series:
    return values.map(lambda d: d.replace(day=1) if d is not None and not pd.isna(d) else None)


def protect(typed: pd.DataFrame, table: Table, la_code: str | None, pseudonymiser: Pseudonymiser) -> pd.DataFrame:
    """Apply each column's declared treatment to a typed table before it is stored."""
    out = typed.copy()
    for col in table.columns:
        if col.out not in out.columns or col.privacy is None:
            continue
        if col.privacy == "pseudonymise":
            out[col.out] = pseudonymiser.tokens(out[col.out], scope=la_code or "")
        elif col.privacy == "pseudonymise_national":
            out[col.out] = pseudonymiser.tokens(out[col.out])
        elif col.privacy == "month":
            out[col.out] = month_of(out[col.out])
        elif col.privacy == "postcode_district":
            out[col.out] = postcode_district(out[col.out])
        elif col.privacy == "drop":
            out = out.drop(columns=[col.out])
    return out


def protect_arrow(typed: pa.Table, table: Table, la_code: str | None, pseudonymiser: Pseudonymiser) -> pa.Table:
    """``protect`` on an Arrow table (typed in DuckDB): the same treatments, column at a time in Arrow compute."""
    out = typed
    for col in table.columns:
        if col.out not in out.column_names or col.privacy is None:
            continue
        i = out.column_names.index(col.out)
        values = out.column(i)
        if col.privacy == "pseudonymise":
            out = out.set_column(i, col.out, pseudonymiser.tokens_arrow(values, scope=la_code or ""))
        elif col.privacy == "pseudonymise_national":
            out = out.set_column(i, col.out, pseudonymiser.tokens_arrow(values))
        elif col.privacy == "month":
            out = out.set_column(i, col.out, pc.floor_temporal(values, unit="month"))
        elif col.privacy == "postcode_district":
            compact = pc.replace_substring_regex(pc.utf8_upper(values), r"\s+", "")
            district = pc.utf8_slice_codeunits(compact, 0, -3)
            out = out.set_column(i, col.out, pc.if_else(pc.greater(pc.utf8_length(compact), 4), district,
                                                        pa.scalar(None, pa.string())))
        elif col.privacy == "drop":
            out = out.remove_column(i)
    return out


def protect_raw(raw: dict, table: Table | None, la_code: str | None, pseudonymiser: Pseudonymiser,
                failing_fields: set[str]) -> dict:
    """The raw values kept with a quarantined row: identifiers hashed as in the clean tables, and other
    sensitive values withheld unless they are the value that failed (the data team needs to see it)."""
    if table is None:
        return raw
    out = {}
    by_name = {c.name: c for c in table.columns}
    for name, value in raw.items():
        col = by_name.get(name)
        if value is None or col is None or col.privacy is None:
            out[name] = value
        elif col.privacy == "pseudonymise":
            out[name] = pseudonymiser.token(str(value), la_code or "")
        elif col.privacy == "pseudonymise_national":
            out[name] = pseudonymiser.token(str(value))
        elif name in failing_fields and col.privacy in ("month", "postcode_district"):
            out[name] = value
        elif col.privacy == "postcode_district":
            out[name] = postcode_district(pd.Series([value], dtype="str")).iloc[0]
        else:
            out[name] = "(withheld)"
    return out
