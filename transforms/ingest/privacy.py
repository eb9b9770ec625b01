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


KEY_FILE = Path(".secrets") / "pseudonym.key"
KEY_HEX = 64     # 32 random bytes, written as hex


class KeyFileError(RuntimeError):
    """The repository's key file is empty, short or unreadable (the message names the path and the remedy)."""


def key_path(repo: Path) -> Path:
    return Path(repo) / KEY_FILE


def repository_key(repo: Path) -> bytes:
    """The key in ``REPO/.secrets/pseudonym.key``, created on first use.

    Creation is atomic: 32 random bytes (as hex) go to a temporary file in the same folder, are fsynced,
    and are linked into place with ``os.link``, which fails if another process got there first; that
    process's key is then read. A reader therefore never sees a half-written key, and two first ingests
    at once end with one key. Raises ``KeyFileError`` (naming the path and what to do) for an empty or
    short key file, e.g. one left by an older version killed while writing it.
    """
    path = key_path(repo)
    if not path.exists():
        create_key(path)
    try:
        key = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the pseudonymisation key {path}: {exc}") from None
    if len(key) < 16:
        raise KeyFileError(
            f"the pseudonymisation key {path} is {'empty' if not key else 'too short'} "
            f"({len(key)} characters; at least 16 needed). If nothing was pseudonymised with it, "
            f"`csreturns doctor --repo {Path(repo)} --fix` replaces it; otherwise restore it from your backup "
            "(a new key would break the link between earlier and later loads).")
    return key.encode()


def create_key(path: Path, replace: bool = False) -> bool:
    """Write a new random key to ``path`` atomically (mode 0600); False if one was already there
    (unless ``replace``, which swaps the new key in with ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(os.urandom(KEY_HEX // 2).hex())
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            created = True
        else:
            try:
                os.link(tmp, path)
                created = True
            except FileExistsError:
                created = False
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return created
    finally:
        tmp.unlink(missing_ok=True)


def key_status(repo: Path) -> tuple[str, str]:
    """(state, sentence) of the repository's key: ``configured`` (``CSRETURNS_PSEUDONYM_KEY``), ``ok``,
    ``missing`` (made on the first ingest) or ``broken`` (empty, short or unreadable)."""
    if settings.current().pseudonym_key:
        return "configured", "pseudonymisation key: from CSRETURNS_PSEUDONYM_KEY"
    path = key_path(repo)
    if not path.exists():
        return "missing", f"pseudonymisation key: none yet at {path} (made on the first ingest)"
    try:
        repository_key(repo)
    except KeyFileError as exc:
        return "broken", str(exc)
    return "ok", f"pseudonymisation key: present at {path}"


def repair_key(repo: Path, pseudonymised: bool) -> str:
    """Replace an empty or short key file with a new key, only if no data was pseudonymised with the
    repository's key (``pseudonymised`` False); otherwise refuse (``KeyFileError``): a new key would give
    the same children new tokens, so later loads would no longer link to earlier ones."""
    path = key_path(repo)
    if pseudonymised:
        raise KeyFileError(
            f"refused to replace {path}: this repository already holds pseudonymised loads, made with the key "
            "that was there. Restore the key file from your backup (or set CSRETURNS_PSEUDONYM_KEY to it); "
            "a new key would break the link between earlier and later loads of the same children.")
    create_key(path, replace=True)
    return f"pseudonymisation key: replaced the broken {path} with a new key (no data used the old one)"


class Pseudonymiser:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("pseudonymisation key must be at least 16 bytes")
        self._key = key
        self._memo: dict[str, dict[str, str]] = {}   # scope -> value -> token
        # HMAC-SHA256 (RFC 2104) with the key's inner and outer blocks hashed once: each token then costs two
        # copies of a hash state instead of building an HMAC object (2x faster on a council's ids; the tokens
        # are hmac.new's, tested)
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    @classmethod
    def for_repository(cls, repo: Path) -> "Pseudonymiser":
        configured = settings.current().pseudonym_key
        if configured:
            return cls(configured.encode())
        return cls(repository_key(Path(repo)))

    def token(self, value: str, scope: str = "") -> str:
        """The pseudonym of ``value`` within ``scope`` (a council's code, or "" for national identifiers):
        the first ``TOKEN_HEX`` hex digits of HMAC-SHA256(key, "scope|value")."""
        return self._tokens_of([value], scope)[0]

    def _tokens_of(self, values: list, scope: str) -> list[str]:
        """The token of each value (``str`` of it), computed once per scope and value in this object's life
        (a child's id recurs in every table of a return)."""
        memo = self._memo.setdefault(scope, {})
        prefix = f"{scope}|"
        inner, outer = self._inner, self._outer
        for v in values:
            text = v if isinstance(v, str) else str(v)
            if text not in memo:   # HMAC-SHA256 from the pre-hashed blocks, inline: once per distinct id
                h = inner.copy()
                h.update((prefix + text).encode())
                o = outer.copy()
                o.update(h.digest())
                memo[text] = o.hexdigest()[:TOKEN_HEX]
        return [memo[v if isinstance(v, str) else str(v)] for v in values]

    def tokens(self, values: pd.Series, scope: str = "") -> pd.Series:
        """Vectorised over distinct values: a child's rows share one hash computation."""
        distinct = list(values.dropna().unique())
        return values.map(dict(zip(distinct, self._tokens_of(distinct, scope))))

    def tokens_arrow(self, values: pa.Array | pa.ChunkedArray, scope: str = "") -> pa.Array:
        """``tokens`` on an Arrow column: one HMAC per distinct value (memoised across tables and files),
        spread back to the rows with Arrow's ``index_in``/``take``; empty cells stay empty."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        distinct = pc.unique(values.drop_null())
        tokens = self._tokens_of(distinct.to_pylist(), scope)
        return pc.take(pa.array(tokens, pa.string()), pc.index_in(values, value_set=distinct))


_OUTWARD = r"[A-Z]{1,2}\d[A-Z\d]?"
_FULL_POSTCODE = re.compile(f"({_OUTWARD})\\d[A-Z]{{2}}")
_OUTWARD_ALONE = re.compile(_OUTWARD)


def district_of(value: str | None) -> str | None:
    """The outward code (district) of a postcode: ``EG19 7TT`` -> ``EG19``; a value that is already an
    outward code alone (``EG19``, ``J1``) is kept as the district. Anything else is None (validation
    reports the value before this runs: see the HOME_POST / PL_POST patterns in schemas/)."""
    if value is None:
        return None
    compact = _SPACES.sub("", str(value).upper())
    full = _FULL_POSTCODE.fullmatch(compact)
    if full:
        return full.group(1)
    return compact if _OUTWARD_ALONE.fullmatch(compact) else None


def protect_arrow(typed: pa.Table, table: Table, la_code: str | None, pseudonymiser: Pseudonymiser) -> pa.Table:
    """Apply each column's declared treatment (``privacy:`` in the schema) to a typed table before it is stored:
    pseudonymise (HMAC per council), pseudonymise_national, month, postcode_district or drop, column at a time
    in Arrow compute."""
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
        elif col.privacy == "postcode_district":   # a return holds few distinct postcodes: map each once
            values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            distinct = pc.unique(values.drop_null())
            districts = [district_of(v) for v in distinct.to_pylist()]
            out = out.set_column(i, col.out, pc.take(pa.array(districts, pa.string()),
                                                     pc.index_in(values, value_set=distinct)))
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
            out[name] = district_of(value)
        else:
            out[name] = "(withheld)"
    return out
