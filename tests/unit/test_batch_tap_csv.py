"""tap-dativo-csv with singer-sdk's batch_config: BATCH files hold exactly the records
RECORD messages would, in the encoding the message names, and STATE follows each."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.test_tap_csv import (
    ORDERS_CONTRACT,
    final_state,
    in_tmp,  # noqa: F401 - fixture
    of_type,
    records,
    run_cli,
    run_tap,
    write,
)

ROWS = "".join(f"{i},{i}.25,u{i}@example.com,2024-01-0{i % 9 + 1}\n" for i in range(1, 6))
BAD = "6,abc,u6@example.com,2024-01-01\n"  # 'abc' does not convert to a decimal


def config(fmt: str, compression: str, root: Path, batch_size: int = 2) -> dict[str, Any]:
    return {
        "files": [{"entity": "orders", "path": "orders.csv", "contract": "orders.odcs.yaml"}],
        "batch_config": {"encoding": {"format": fmt, "compression": compression},
                         "storage": {"root": root.as_uri(), "prefix": "orders-"},
                         "batch_size": batch_size},
    }


def local(uri: str) -> Path:
    return Path(url2pathname(urlparse(uri).path))


def file_records(message: dict[str, Any]) -> list[dict[str, Any]]:
    """What a target reads from one BATCH message's manifest."""
    out: list[dict[str, Any]] = []
    for uri in message["manifest"]:
        path = local(uri)
        if message["encoding"]["format"] == "parquet":
            out.extend(pq.read_table(path).to_pylist())
            continue
        data = path.read_bytes()
        assert (data[:2] == b"\x1f\x8b") == (message["encoding"]["compression"] == "gzip")
        if message["encoding"]["compression"] == "gzip":
            data = gzip.decompress(data)
        out.extend(json.loads(line, parse_float=Decimal) for line in data.splitlines())
    return out


@pytest.mark.parametrize(("fmt", "compression"), [
    ("jsonl", "none"), ("jsonl", "gzip"), ("parquet", "none"), ("parquet", "gzip"),
])
def test_batches_hold_the_records_and_state_follows_each(
    in_tmp: Path, fmt: str, compression: str  # noqa: F811
) -> None:
    write(in_tmp / "orders.odcs.yaml", ORDERS_CONTRACT)
    write(in_tmp / "orders.csv", "order_id,amount,email,ordered_at\n" + ROWS)
    plain = run_tap({"files": config(fmt, compression, in_tmp)["files"]})
    batched = run_tap(config(fmt, compression, in_tmp / "batches"))

    assert of_type(batched, "RECORD") == []
    messages = [m for m in batched if m["type"] in ("BATCH", "STATE")]
    kinds = [m["type"] for m in messages]
    # 5 rows, batch_size 2; singer-sdk writes a STATE after a BATCH when it changed.
    assert kinds == ["BATCH", "STATE", "BATCH", "BATCH", "STATE"], kinds
    batches = of_type(batched, "BATCH")
    assert {(b["stream"], b["encoding"]["format"], b["encoding"]["compression"])
            for b in batches} == {("orders", fmt, compression)}
    rows = [row for b in batches for row in file_records(b)]
    assert [len(file_records(b)) for b in batches] == [2, 2, 1]
    if fmt == "parquet":  # typed columns: a target needs no JSON parsing
        first = pq.read_table(local(batches[0]["manifest"][0]))
        assert first.schema.field("order_id").type == pa.int64()
        assert pa.types.is_decimal(first.schema.field("amount").type)
        assert first.column("amount").to_pylist() == [Decimal("1.25"), Decimal("2.25")]
    assert rows == records(plain)
    assert final_state(batched) == final_state(plain)
    # Until a file is read to its end, its bookmark is only a progress marker.
    partition = messages[1]["value"]["bookmarks"]["orders"]["partitions"][0]
    assert "progress_markers" in partition and "replication_key_value" not in partition


def test_parquet_chunk_with_an_unconverted_cell_is_written_as_jsonl(
    in_tmp: Path  # noqa: F811
) -> None:
    """A cell that did not convert must reach the target as its text (to be rejected
    there), which a typed Parquet column cannot hold."""
    write(in_tmp / "orders.odcs.yaml", ORDERS_CONTRACT)
    write(in_tmp / "orders.csv", "order_id,amount,email,ordered_at\n" + ROWS + BAD)
    batched = run_tap({**config("parquet", "none", in_tmp / "batches", batch_size=3),
                       "on_invalid_value": "pass"})
    batches = of_type(batched, "BATCH")
    assert [b["encoding"]["format"] for b in batches] == ["parquet", "jsonl"]
    second = file_records(batches[1])
    assert [(r["order_id"], r["amount"]) for r in second] == [
        (4, Decimal("4.25")), (5, Decimal("5.25")), (6, "abc")]


def test_about_lists_batch_config(in_tmp: Path) -> None:  # noqa: F811
    from tap_dativo_csv.tap import TapDativoCSV

    properties = TapDativoCSV.config_jsonschema["properties"]
    encoding = properties["batch_config"]["properties"]["encoding"]["properties"]
    assert encoding["format"]["enum"] == ["jsonl", "parquet"]
    assert "batch" in [str(c) for c in TapDativoCSV.capabilities]


def test_bad_batch_config_names_the_key_before_reading(in_tmp: Path) -> None:  # noqa: F811
    write(in_tmp / "orders.csv", "order_id\n1\n")
    cfg = {"files": [{"entity": "orders", "path": "orders.csv"}],
           "batch_config": {"encoding": {"format": "jsonl"}, "batch_size": 0}}
    (in_tmp / "config.json").write_text(json.dumps(cfg))
    result = run_cli("--config", "config.json", cwd=in_tmp)
    assert result.returncode == 2
    assert "batch_config.batch_size: must be a positive integer, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_storage_defaults_to_output_batches(in_tmp: Path) -> None:  # noqa: F811
    write(in_tmp / "orders.csv", "order_id\n1\n2\n")
    messages = run_tap({"files": [{"entity": "orders", "path": "orders.csv"}],
                        "batch_config": {"encoding": {"format": "jsonl"}}})
    (message,) = of_type(messages, "BATCH")
    assert message["encoding"] == {"format": "jsonl", "compression": "none"}
    (uri,) = message["manifest"]
    assert local(uri).parent == in_tmp / "output" / "batches"
    assert [r["order_id"] for r in file_records(message)] == ["1", "2"]


def test_parquet_batch_spanning_files_keeps_every_column(in_tmp: Path) -> None:  # noqa: F811
    """Files of one glob with different headers: a batch holding rows of both keeps
    the columns only the second file has."""
    write(in_tmp / "data" / "a.csv", "id,name\n1,x\n")
    write(in_tmp / "data" / "b.csv", "id,name,city\n2,y,Oslo\n")
    cfg = {"files": [{"entity": "people", "path": "data/*.csv"}],
           "batch_config": {"encoding": {"format": "parquet"},
                            "storage": {"root": (in_tmp / "out").as_uri()},
                            "batch_size": 10}}
    plain = run_tap({"files": cfg["files"]})
    (message,) = of_type(run_tap(cfg), "BATCH")
    rows = file_records(message)
    assert [(r["id"], r["name"], r["city"]) for r in rows] == [("1", "x", None),
                                                               ("2", "y", "Oslo")]
    assert [{k: v for k, v in r.items() if v is not None} for r in rows] == [
        {k: v for k, v in r.items() if v is not None} for r in records(plain)]
