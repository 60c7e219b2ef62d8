"""Every batch kind is a Batch: the loader, the check thread and the committer use only
that interface, and a batch read from the tap's file never deletes it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from target_dativo_iceberg.batch_jsonl import DirectJsonlBatch, FileSpooledBatch, jsonl_batches
from target_dativo_iceberg.batch_parquet import ParquetFileBatch, parquet_batches
from target_dativo_iceberg.batch_roots import BatchFilePolicy
from target_dativo_iceberg.batch_sources import BatchFormat, BatchMessage
from target_dativo_iceberg.batch_spooled import SpooledBatch
from target_dativo_iceberg.batches import Batch


def test_batch_is_abstract() -> None:
    with pytest.raises(TypeError):
        Batch()  # type: ignore[abstract]


@pytest.mark.parametrize("kind", [SpooledBatch, FileSpooledBatch, DirectJsonlBatch,
                                  ParquetFileBatch])
def test_every_kind_implements_batch(kind: type[Batch]) -> None:
    assert issubclass(kind, Batch)
    assert not kind.__abstractmethods__


@pytest.mark.parametrize(("fmt", "kind"), [("jsonl", DirectJsonlBatch),
                                           ("parquet", ParquetFileBatch)])
def test_a_tap_file_batch_names_its_uri_and_leaves_the_file(
        tmp_path: Path, fmt: BatchFormat, kind: type[Batch]) -> None:
    path = tmp_path / f"part.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table({"id": [1, 2]}), path)
    else:
        path.write_bytes(b'{"id":1}\n{"id":2}\n')
    uri = path.as_uri()
    source = BatchFilePolicy.from_config([str(tmp_path)], None).admit(uri)
    message = BatchMessage("s", fmt, "none", (uri,), line=4)
    batches = (jsonl_batches(message, source, tmp_path, 10, 1 << 20) if fmt == "jsonl"
               else parquet_batches(message, source, tmp_path, 10))
    (batch,) = batches
    assert isinstance(batch, kind)
    assert batch.uri == source.uri and not hasattr(batch, "path")  # type: ignore[attr-defined]
    assert batch.bytes == 0
    batch.discard()
    assert path.exists()
