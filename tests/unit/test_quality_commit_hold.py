"""Issue 16: a gate reads a small commit's rows once. ``CommitRows.run_rows`` holds the
added rows' columns in memory (up to ``HOLD_BYTES``) on its first call and serves every
later projection from them, with the same rows and Arrow schema a streamed read gives;
a commit past the bound, and a column not held, are streamed from the data files.

Whether a read came from memory shows as what happens once the commit's data file is
gone: a held projection still reads, a streamed one fails."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pytest

from dativo.contracts import Contract, FieldSpec
from dativo.iceberg import quality_gate
from dativo.iceberg.quality_gate import CommitRows
from dativo.iceberg.staging import FileBatch
from dativo.iceberg.writer import IcebergWriter

CONTRACT = Contract(name="t", fields=(FieldSpec("id", "integer", required=True,
                                                primary_key_position=1),
                                      FieldSpec("v", "string"),
                                      FieldSpec("b", "binary")), domain="d")
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string()),
                    pa.field("b", pa.binary())])
ROWS = 2000


@pytest.fixture
def writer(tmp_path: Path) -> IcebergWriter:
    return IcebergWriter({"type": "sql", "uri": f"sqlite:///{tmp_path / 'c.db'}",
                          "warehouse": (tmp_path / "wh").as_uri()}, "acme")


def commit(writer: IcebergWriter, check, *, text: str = "v") -> None:
    """Commit ROWS rows, running ``check(view, data_file_path)`` as the gate."""
    table = writer.ensure_table(CONTRACT, SCHEMA)
    ids = list(range(ROWS))
    data = pa.table({"id": ids, "v": [f"{text}{i % 7}" for i in ids],
                     "b": [bytes([i % 256]) for i in ids]}, schema=SCHEMA)
    files = writer.write_files(table, data)
    assert len(files) == 1

    def gate(view: CommitRows) -> Mapping[str, str]:
        check(view, urlparse(files[0].file_path).path)
        return {}

    writer.commit_files(table, [FileBatch(files)], {}, gate=gate)


def test_later_projections_of_a_small_commit_come_from_memory(writer: IcebergWriter) -> None:
    seen: dict[str, object] = {}

    def check(view: CommitRows, path: str) -> None:
        first = view.run_rows(["id"]).read_all()
        os.remove(path)  # from here on only what the first read held can be served
        seen["v"] = view.run_rows(["v"]).read_all()
        seen["id,v"] = view.run_rows(["v", "id"]).read_all()
        seen["id"] = first
        with pytest.raises(OSError):  # binary: not held (no distinct count reads it)
            view.run_rows(["b"]).read_all()

    commit(writer, check)
    assert seen["id"].column("id").to_pylist() == list(range(ROWS))
    assert seen["v"].column("v").to_pylist() == [f"v{i % 7}" for i in range(ROWS)]
    assert seen["id,v"].column_names == ["id", "v"]  # the table's order, as streamed


def test_held_and_streamed_reads_give_the_same_schema_and_rows(
        writer: IcebergWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    got: dict[str, list[pa.Table]] = {"held": [], "streamed": []}
    key = "held"

    def check(view: CommitRows, path: str) -> None:
        for columns in (["id"], ["v"], ["id", "v"], []):
            got[key].append(view.run_rows(columns).read_all())

    commit(writer, check)
    monkeypatch.setattr(quality_gate, "HOLD_BYTES", 0)
    key = "streamed"
    commit(writer, check)
    for held, streamed in zip(got["held"], got["streamed"], strict=True):
        assert held.schema == streamed.schema
        assert held.to_pylist() == streamed.to_pylist()


def test_a_commit_past_the_bound_is_streamed(writer: IcebergWriter,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A long repeated string compresses to a few KiB but takes ~2 MB in Arrow: the read
    that would hold it stops at the bound and every read streams."""
    monkeypatch.setattr(quality_gate, "HOLD_BYTES", 256 * 1024)
    seen: list[int] = []

    def check(view: CommitRows, path: str) -> None:
        seen.append(view.run_rows(["v"]).read_all().num_rows)
        seen.append(view.run_rows(["id"]).read_all().num_rows)
        os.remove(path)
        with pytest.raises(OSError):
            view.run_rows(["id"]).read_all()

    commit(writer, check, text="x" * 1000)
    assert seen == [ROWS, ROWS]


def test_queries_on_two_threads_read_the_commit_once_and_both_get_every_row(
        writer: IcebergWriter) -> None:
    counts: list[int] = []

    def check(view: CommitRows, path: str) -> None:
        def read(columns: list[str]) -> None:
            counts.append(view.run_rows(columns).read_all().num_rows)

        threads = [threading.Thread(target=read, args=(c,)) for c in (["id"], ["v"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        os.remove(path)
        counts.append(view.run_rows(["id", "v"]).read_all().num_rows)

    commit(writer, check)
    assert counts == [ROWS, ROWS, ROWS]


def test_a_gate_without_rules_holds_nothing(writer: IcebergWriter) -> None:
    """The anomaly profile alone reads each column once: nothing is kept for later."""
    from dativo.quality.gate import QualityGate

    reads: list[int] = []

    def profile(view: CommitRows) -> list:
        reads.append(view.run_rows(["id", "v"]).read_all().num_rows)
        os.remove(path[0])
        with pytest.raises(OSError):
            view.run_rows(["id"]).read_all()
        return []

    path: list[str] = []
    gate = QualityGate("s", (), strict=False, timeout=30, extra=profile)
    commit(writer, lambda view, file: (path.append(file), gate(view)))
    assert reads == [ROWS]
