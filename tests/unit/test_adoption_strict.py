"""What a strict refusal may still commit: :func:`tables_to_drop` (issue 13, part 3)."""

from __future__ import annotations

import pytest

from target_dativo_iceberg.strict import tables_to_drop


@pytest.mark.parametrize(("pending", "states", "drop_all", "dropped", "kept"), [
    ({}, [3], False, set(), 1),  # nothing uncommitted: the STATE goes out
    ({"a": (1, 3)}, [3], False, set(), 1),  # every row before the last STATE
    ({"a": (4, 5)}, [3], False, {"a"}, 1),  # rows after it only: dropped, STATE kept
    ({"a": (1, 2)}, [], False, {"a"}, 0),  # no STATE covers them
    # a's rows span the STATE of drain 3 (one data file): a goes, so does that STATE,
    # and with it b, which only that STATE covered; the STATE of drain 1 still holds.
    ({"a": (2, 4), "b": (3, 3)}, [1, 3], False, {"a", "b"}, 1),
    ({"a": (2, 4), "c": (1, 1)}, [1, 3], False, {"a"}, 1),
    ({"a": (1, 1)}, [1], True, {"a"}, 0),  # overwrite: nothing partial
])
def test_tables_to_drop(pending: dict[str, tuple[int, int]], states: list[int],
                        drop_all: bool, dropped: set[str], kept: int) -> None:
    assert tables_to_drop(pending, states, drop_all=drop_all) == (dropped, kept)
