"""Spooling jsonl BATCH files: every record reaches the spool once, byte for byte, in
order, cut into batches of batch_size_rows, whatever the line endings and blocks."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from dativo.errors import CodecError
from target_dativo_iceberg.batch_jsonl import spool_jsonl
from target_dativo_iceberg.batch_messages import parse_batch_message
from target_dativo_iceberg.batch_roots import BatchFilePolicy, BatchSource, LocalFile
from target_dativo_iceberg.batch_sources import BatchMessage
from target_dativo_iceberg.batches import raw_record_json


def message(uri: str, compression: str = "none") -> BatchMessage:
    return BatchMessage("s", "jsonl", compression, (uri,), line=7)


def admitted(path: Path, uri: str | None = None) -> BatchSource:
    """``path`` as the target admits it, with its parent as the only batch root."""
    return BatchFilePolicy.from_config([str(path.parent)], None).admit(uri or path.as_uri())


def spooled(path: Path, batch_size_rows: int, compression: str = "none"
            ) -> list[tuple[int, list[str]]]:
    """(first_row, records as spooled) per batch; the spool files are removed."""
    out = []
    spool_dir = path.parent / "spool"
    spool_dir.mkdir(exist_ok=True)
    for batch in spool_jsonl(message(path.as_uri(), compression), admitted(path), spool_dir,
                             batch_size_rows):
        with open(batch.path, "rb") as spool:
            records = [raw_record_json(line.decode()) for line in spool]
        assert len(records) == batch.rows
        assert batch.line_number(len(records) - 1) == 7
        out.append((batch.first_row, records))
        batch.discard()
    assert list(spool_dir.iterdir()) == []
    return out


@pytest.mark.parametrize(("text", "expected"), [
    (b'{"a":1}\n{"a":2}\n{"a":3}\n', ['{"a":1}', '{"a":2}', '{"a":3}']),
    (b'{"a":1}\n{"a":2}\n{"a":3}', ['{"a":1}', '{"a":2}', '{"a":3}']),  # no final newline
    (b'{"a":1}\r\n{"a":2}\r\n\r\n{"a":3}\r\n', ['{"a":1}', '{"a":2}', '{"a":3}']),
    (b'\n{"a": "x\\ny"}\n  \n{"a":[1, 2]}\n\n', ['{"a": "x\\ny"}', '{"a":[1, 2]}']),
    (b"", []),
])
def test_records_are_spooled_exactly(tmp_path: Path, text: bytes, expected: list[str]) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(text)
    batches = spooled(path, batch_size_rows=2)
    assert [r for _, rows in batches for r in rows] == expected
    assert [first for first, _ in batches] == list(range(0, len(expected), 2))
    assert all(len(rows) <= 2 for _, rows in batches)


def test_large_gzip_file_crosses_read_blocks_intact(tmp_path: Path) -> None:
    records = [orjson.dumps({"id": i, "pad": "x" * (i % 300)}) for i in range(60_000)]
    data = b"\n".join(records) + b"\n"
    assert len(data) > 8 * 1024 * 1024  # more than one read block
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(data, compresslevel=1))
    # Declared "none": the gzip magic number decides (singer-sdk gzips regardless).
    batches = spooled(path, batch_size_rows=25_000)
    assert [(first, len(rows)) for first, rows in batches] == [
        (0, 25_000), (25_000, 25_000), (50_000, 10_000)]
    assert [r.encode() for _, rows in batches for r in rows] == records


def test_missing_file_names_line_and_file(tmp_path: Path) -> None:
    uri = (tmp_path / "nope.jsonl").as_uri()
    with pytest.raises(CodecError) as caught:
        # Admitted while it existed, then removed: the open fails.
        list(spool_jsonl(message(uri), LocalFile(uri, str(tmp_path), ("nope.jsonl",), 99),
                         tmp_path, 10))
    assert caught.value.line == 7
    assert f"stream 's': BATCH manifest file {uri} cannot be read" in str(caught.value)


def test_plain_paths_and_defaults_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_bytes(b'{"a":1}\n')
    parsed = parse_batch_message({"type": "BATCH", "stream": "s", "encoding": {
        "format": "jsonl"}, "manifest": [str(path)]}, 3)
    assert (parsed.compression, parsed.manifest, parsed.line) == ("none", (str(path),), 3)
    (batch,) = spool_jsonl(parsed, admitted(path, str(path)), tmp_path, 10)
    assert batch.rows == 1 and batch.where(0) == f"file {path} row 1"
    batch.discard()
