"""What each table will commit next: its staged changes, and its open data files.

Appended rows go into data files that stay open across batches until they reach the
table's target size (:class:`~dativo.iceberg.data_files.RollingDataFiles`); at most
``open_data_files`` of them stay open, and one closed early for another's sake is
staged like a full one. A closed file is a staged change of its table, committed at
the committer's next publish.

Everything here runs on the loader's single commit thread, so nothing is locked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dativo.iceberg.staging import FileBatch, TableChange
from dativo.open_files import OpenFiles

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

    from dativo.iceberg.data_files import RollingDataFiles

LOGGER = logging.getLogger(__name__)


@dataclass
class Staged:
    """One table's changes since its last commit, in message order."""

    table: Table
    stream: str
    dead_letter: bool
    changes: list[TableChange] = field(default_factory=list)
    rows: int = 0

    def add(self, change: TableChange, rows: int) -> None:
        self.changes.append(change)
        self.rows += rows

    @property
    def files(self) -> list[DataFile]:
        return [f for c in self.changes if isinstance(c, FileBatch) for f in c.files]


@dataclass
class _Rolling:
    files: RollingDataFiles
    table: Table
    stream: str


class StagedTables:
    """Every table's staged changes (``staged``, by table name) and open data files."""

    def __init__(self, open_data_files: int) -> None:
        self.staged: dict[str, Staged] = {}
        self._rolling: dict[str, _Rolling] = {}
        self._open_files = OpenFiles(open_data_files)
        self.unsafe = False  # see writing_files

    @contextmanager
    def writing_files(self) -> Iterator[None]:
        """Data files are written or closed: a failure may leave a failed drain's rows
        (whose STATE is dropped) in them, or lose rows, so salvage must commit no more."""
        try:
            yield
        except BaseException:
            self.unsafe = True
            raise

    def stage(self, table: Table, stream: str, change: TableChange, rows: int, *,
              dead_letter: bool = False) -> None:
        """Add ``change`` (holding ``rows`` rows) to the table's next commit."""
        name = staged_name(table)
        staged = self.staged.get(name)
        if staged is None:
            staged = self.staged[name] = Staged(table, stream, dead_letter)
        staged.table = table  # the newest handle, after any schema evolution
        staged.add(change, rows)

    def append(self, table: Table, stream: str, rows: pa.Table, drain: int) -> None:
        """Write ``rows`` (of drain ``drain``) into the table's open data files."""
        self._add_closed(table, stream, self._rolling_for(table, stream).write(rows, drain))

    def close_files(self, name: str | None = None) -> None:
        """Close the open data files of table ``name`` (default: of every table) and
        stage them."""
        names = list(self._rolling) if name is None else [name]
        with self.writing_files():
            for each in names:
                rolling = self._rolling.pop(each, None)
                if rolling is not None:
                    self._add_closed(rolling.table, rolling.stream, rolling.files.close_all())

    def oldest_open_drain(self, name: str | None = None) -> int | None:
        """The oldest drain with rows in an open data file of table ``name`` (default:
        of any table); ``None`` when there is none."""
        rolling = self._rolling.values() if name is None else (
            [self._rolling[name]] if name in self._rolling else [])
        return min((drain for r in rolling
                    if (drain := r.files.oldest_open_drain()) is not None), default=None)

    def drop(self, name: str) -> None:
        """Forget table ``name``'s staged changes and open files, deleting their data
        files (no snapshot has them; one left behind is a harmless orphan)."""
        unused: list[tuple[Table, list[DataFile]]] = []
        rolling = self._rolling.pop(name, None)
        if rolling is not None:
            unused.append((rolling.table, rolling.files.close_all()))
        staged = self.staged.pop(name, None)
        if staged is not None:
            unused.append((staged.table, staged.files))
        for table, files in unused:
            for data_file in files:
                try:
                    table.io.delete(data_file.file_path)
                except OSError as exc:
                    LOGGER.debug("could not delete %s: %s", data_file.file_path, exc)

    def _rolling_for(self, table: Table, stream: str) -> RollingDataFiles:
        from dativo.iceberg.data_files import RollingDataFiles

        name = staged_name(table)
        rolling = self._rolling.get(name)
        if rolling is not None and not rolling.files.fits(table.metadata):
            # The table's schema or spec changed: files opened under the old one close.
            self._add_closed(table, stream, rolling.files.close_all())
            rolling = None
        if rolling is None:
            rolling = self._rolling[name] = _Rolling(
                RollingDataFiles(table.metadata, table.io, self._open_files,
                                 lambda data_file: self._evicted(name, data_file)),
                table, stream)
        return rolling.files

    def _evicted(self, name: str, data_file: DataFile) -> None:
        """A table's data file closed early for another's (``max_open_files``): it is
        committed at the next publish, like a full one."""
        rolling = self._rolling[name]
        self._add_closed(rolling.table, rolling.stream, [data_file])
        if not rolling.files.has_open_files:
            del self._rolling[name]

    def _add_closed(self, table: Table, stream: str, files: list[DataFile]) -> None:
        if files:
            self.stage(table, stream, FileBatch(files), sum(f.record_count for f in files))


def staged_name(table: Table) -> str:
    return ".".join(table.name())
