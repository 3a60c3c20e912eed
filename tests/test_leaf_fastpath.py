"""The leaf encoding's metadata fast path gives exactly the reference RFC 8785 text."""

from __future__ import annotations

import orjson
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit.integrity import leaf

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _VALUES, max_size=5), st.booleans())
def test_metadata_fast_path_equals_the_reference(meta: dict, sort_keys: bool) -> None:
    text = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    leaf._CANONICAL_CACHE.clear()
    got = leaf._metadata(pl.Series([text, None]))
    assert got.to_list() == [leaf.canonical_json(orjson.loads(text)), "{}"]


def test_texts_orjson_and_rfc8785_write_differently_take_the_reference_path() -> None:
    texts = ['{"a":1.0}', '{"a":-0.0}', '{"a":1e+20}', '{"a":12345678901234567890}', '{"\ue000":1,"\U0001f600":2}']
    leaf._CANONICAL_CACHE.clear()
    assert leaf._metadata(pl.Series(texts)).to_list() == [
        '{"a":1}', '{"a":0}', '{"a":100000000000000000000}', '{"a":12345678901234567000}',
        '{"\U0001f600":2,"\ue000":1}',
    ]

