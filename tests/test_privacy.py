"""Pseudonyms are HMAC-SHA256 of "scope|value" under the repository's key (RFC 2104), cut to TOKEN_HEX digits.

``Pseudonymiser.token`` computes them from the key's pre-hashed inner and outer blocks; a change there must not
change a single token, or every child's history in an existing repository would split in two."""
from __future__ import annotations

import hashlib
import hmac

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.ingest.privacy import TOKEN_HEX, Pseudonymiser, district_of

KEYS = [b"k" * 16, bytes(range(64)), b"a longer key than one SHA-256 block of sixty-four bytes, hashed first" * 2]


def reference(key: bytes, value: str, scope: str) -> str:
    return hmac.new(key, f"{scope}|{value}".encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX]


@given(st.sampled_from(KEYS), st.text(max_size=40), st.sampled_from(["", "301", "E09000002"]))
def test_a_token_is_the_hmac_of_scope_and_value(key, value, scope):
    assert Pseudonymiser(key).token(value, scope) == reference(key, value, scope)


def test_a_column_of_ids_gets_the_same_tokens_as_one_at_a_time():
    key = KEYS[1]
    ids = pa.chunked_array([["A1", None, "B2"], ["A1", "Zoë-3"]])
    tokens = Pseudonymiser(key).tokens_arrow(ids, scope="301").to_pylist()
    assert tokens == [reference(key, "A1", "301"), None, reference(key, "B2", "301"),
                      reference(key, "A1", "301"), reference(key, "Zoë-3", "301")]


@pytest.mark.parametrize("given, district", [
    ("EG19 7TT", "EG19"), ("eg197tt", "EG19"), (" EG1  9TT ", "EG1"), ("EG19", "EG19"), ("J1", "J1"),
    ("W1A 1AA", "W1A"), ("EG19 7T", None), ("not a postcode", None), ("", None), (None, None)])
def test_a_postcode_is_kept_to_its_district(given, district):
    assert district_of(given) == district


@given(st.from_regex(r"\s?[A-Za-z]{1,2}\d[A-Za-z\d]?\s*(\d[A-Za-z]{2})?\s?", fullmatch=True) | st.text(max_size=10))
def test_district_of_agrees_with_the_pandas_definition_it_replaced(value):
    compact = pd.Series([value], dtype="string").str.upper().str.replace(r"\s+", "", regex=True)
    full = compact.str.extract(r"^([A-Z]{1,2}\d[A-Z\d]?)\d[A-Z]{2}$", expand=False)
    outward = compact.where(compact.str.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]?").fillna(False).astype(bool))
    expected = full.fillna(outward).iloc[0]
    assert district_of(value) == (None if pd.isna(expected) else expected)


def test_a_series_of_ids_gets_the_tokens_of_their_text_and_keeps_its_empty_cells():
    key = KEYS[0]
    tokens = Pseudonymiser(key).tokens(pd.Series(["A1", None, 7, "A1"], dtype=object), scope="301")
    assert tokens.iloc[[0, 2, 3]].tolist() == [reference(key, "A1", "301"), reference(key, "7", "301"),
                                              reference(key, "A1", "301")]
    assert pd.isna(tokens.iloc[1])
