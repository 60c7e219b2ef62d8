"""What a checked batch leaves for the next commit: its data files, and for upsert its keys.

The target hands these to :class:`~dativo.iceberg.writer.IcebergWriter`. Kept free of
pyiceberg imports: the target's loader imports this on the main thread, while pyiceberg
itself is first imported on the commit thread (see ``target_dativo_iceberg.loader``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile

CommitMode = Literal["append", "overwrite", "upsert"]
_POSITION = "__dativo_position"

# Singer's table-version bookkeeping, as singer-sdk's SQL targets name it. A stream gets
# these columns once its tap sends ACTIVATE_VERSION or versioned RECORDs.
VERSION_COLUMN = "_sdc_table_version"
DELETED_AT_COLUMN = "_sdc_deleted_at"
VERSION_FIELDS = (pa.field(VERSION_COLUMN, pa.int64()),
                  pa.field(DELETED_AT_COLUMN, pa.timestamp("us", tz="UTC")))


@dataclass(frozen=True)
class FileBatch:
    """Data files written from one batch; ``keys`` (the batch's primary keys) for upsert."""

    files: list[DataFile]
    keys: pa.Table | None = None


@dataclass(frozen=True)
class VersionActivation:
    """ACTIVATE_VERSION: rows of older versions are deleted, or marked deleted at ``at``."""

    version: int
    hard_delete: bool
    at: datetime


TableChange = FileBatch | VersionActivation
"""One step of a table's next commit; steps apply in the order the messages arrived."""


def last_per_key(data: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Keep, for every key, only the batch's last record (Singer order is time order)."""
    if data.num_rows < 2:
        return data
    positions = data.select(list(keys)).append_column(
        _POSITION, pa.array(range(data.num_rows), pa.int64()))
    last = positions.group_by(list(keys), use_threads=False).aggregate(
        [(_POSITION, "max")]).column(f"{_POSITION}_max")
    if len(last) == data.num_rows:
        return data
    return data.take(last.take(pc.sort_indices(last)))  # kept in input order
