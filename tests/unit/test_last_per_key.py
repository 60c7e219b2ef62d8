"""Within a batch, the last record for a key wins, and survivors keep their order."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from dativo.iceberg.staging import last_per_key

keys = st.tuples(st.integers(0, 5), st.sampled_from(["a", "b", "c"]))


@given(st.lists(keys, max_size=60))
def test_matches_a_last_wins_reference(rows: list[tuple[int, str]]) -> None:
    table = pa.table({"a": [r[0] for r in rows], "b": [r[1] for r in rows],
                      "seq": list(range(len(rows))),
                      "nested": [{"x": i} for i in range(len(rows))]})
    last = {}
    for seq, key in enumerate(rows):
        last[key] = seq
    expected = sorted(last.values())
    assert last_per_key(table, ["a", "b"]).column("seq").to_pylist() == expected
    assert last_per_key(table, ["a", "b"]).column("nested").to_pylist() == [
        {"x": s} for s in expected]
