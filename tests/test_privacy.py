"""Pseudonyms are HMAC-SHA256 of "scope|value" under the repository's key (RFC 2104), cut to TOKEN_HEX digits.

``Pseudonymiser.token`` computes them from the key's pre-hashed inner and outer blocks; a change there must not
change a single token, or every child's history in an existing repository would split in two."""
from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from transforms.ingest.privacy import TOKEN_HEX, Pseudonymiser

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
