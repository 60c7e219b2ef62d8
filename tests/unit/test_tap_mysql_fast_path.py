"""tap-dativo-mysql's ``partitions``: the key ranges cover every key exactly once."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from tap_dativo_mysql.fast_path import range_bounds

KEYS = st.integers(min_value=-(2**63), max_value=2**64 - 1)


def _holders(bounds: list[tuple[int | None, int | None]], key: int) -> int:
    return sum(1 for start, end in bounds
               if (start is None or key >= start) and (end is None or key < end))


@given(KEYS, KEYS, st.integers(min_value=1, max_value=64), st.data())
def test_every_key_is_in_exactly_one_range(low: int, other: int, parts: int,
                                           data: st.DataObject) -> None:
    low, high = min(low, other), max(low, other)
    bounds = range_bounds(low, high, parts)
    assert 1 <= len(bounds) <= parts
    assert bounds[0][0] is None and bounds[-1][1] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    probes = [low, high, low - 1, high + 1, (low + high) // 2,
              data.draw(st.integers(min_value=low - 10, max_value=high + 10))]
    probes += [edge for start, end in bounds for edge in (start, end) if edge is not None]
    probes += [start - 1 for start, _ in bounds if start is not None]
    for key in probes:
        assert _holders(bounds, key) == 1, (low, high, parts, key, bounds)


def test_ranges_are_equal_spans_of_min_to_max() -> None:
    assert range_bounds(1, 1_000_000, 2) == [(None, 500_001), (500_001, None)]
    assert range_bounds(0, 9, 3) == [(None, 4), (4, 8), (8, None)]
    assert range_bounds(5, 5, 4) == [(None, None)]
    assert range_bounds(0, 1, 4) == [(None, 1), (1, None)]
