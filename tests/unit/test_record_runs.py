"""The vectorised run scan finds the same run end and line count as the plain regex
search it replaces, for short and long runs and wherever the region is cut."""

from __future__ import annotations

import random
import re

import pytest

from target_dativo_iceberg.record_runs import FAST_RECORD_MEMBER, FAST_RECORD_PREFIX, RunFinder


def _reference(data: bytes, pos: int, size: int, stream: bytes) -> tuple[int, int]:
    prefix = re.escape(FAST_RECORD_PREFIX + stream + FAST_RECORD_MEMBER)
    match = re.compile(b"\n(?!" + prefix + b")").search(data, pos, size)
    end = match.start() + 1 if match else size
    return end, data.count(b"\n", pos, end)


def _line(rng: random.Random, stream: bytes) -> bytes:
    head = FAST_RECORD_PREFIX + stream + FAST_RECORD_MEMBER
    kind = rng.random()
    if kind < 0.9:
        return head + b"x" * rng.choice([0, 1, 5, 50, 300, 3000]) + b"}\n"
    if kind < 0.93:
        return b'{"type":"STATE","value":{}}\n'
    if kind < 0.96:  # the prefix cut short
        return head[:rng.randrange(1, len(head))] + b"\n"
    if kind < 0.98:
        return FAST_RECORD_PREFIX + b"other" + FAST_RECORD_MEMBER + b"}\n"
    return b"\n"


@pytest.mark.parametrize("seed", range(40))
def test_the_scan_agrees_with_the_regex(seed: int) -> None:
    rng = random.Random(seed)
    finder = RunFinder()
    stream = rng.choice([b"a", b"events", b"s" * 30])
    first = FAST_RECORD_PREFIX + stream + FAST_RECORD_MEMBER + b"}\n"
    data = first + b"".join(_line(rng, stream) for _ in range(rng.choice([5, 2000, 20000])))
    size = len(data)
    if rng.random() < 0.5:  # the block ends before the data does
        size = data.rfind(b"\n", 0, rng.randrange(len(first), size)) + 1
    data += rng.choice([b"", b"tail", FAST_RECORD_PREFIX[:10]])
    pos = 0
    while pos < size:
        if data.startswith(FAST_RECORD_PREFIX + stream + FAST_RECORD_MEMBER, pos):
            found = finder.run(data, pos, size, stream)
            assert found == _reference(data, pos, size, stream)
            pos = found[0]
        else:
            pos = data.index(b"\n", pos) + 1
