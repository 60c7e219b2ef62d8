"""The BATCH messages of a tap run and the rows of their Parquet files (SQL tap tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq

from tests.services.tap_process import TapRun


def batch_settings(tmp_path: Path, batch_size: int, fmt: str = "parquet") -> dict[str, Any]:
    """A ``batch_config`` writing into a fresh folder under ``tmp_path``."""
    root = tmp_path / f"batches-{len(list(tmp_path.glob('batches-*')))}"
    return {"encoding": {"format": fmt}, "batch_size": batch_size,
            "storage": {"root": root.as_uri()}}


def batches(run: TapRun, stream: str) -> list[dict[str, Any]]:
    return [m for m in run.messages if m["type"] == "BATCH" and m["stream"] == stream]


def file_rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one BATCH message's Parquet manifest, as Python values."""
    assert batch["encoding"]["format"] == "parquet", batch
    return [row for uri in batch["manifest"]
            for row in pq.read_table(unquote(urlparse(uri).path)).to_pylist()]


def all_rows(run: TapRun, stream: str) -> list[dict[str, Any]]:
    return [row for batch in batches(run, stream) for row in file_rows(batch)]
