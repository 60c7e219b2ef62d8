"""``dativo maintain remove-orphans``: remove data files that no snapshot references.

A target run writes data files before it commits them; a run killed (or failing) in
between leaves those files behind. They are never read (only snapshots make files
part of a table), but they cost storage. pyiceberg has no orphan-file removal, so this
lists the table's ``data/`` folder through the table's own FileIO (local, S3, ...) and
deletes what no snapshot, current or historical, references and what is older than a
grace period, so files of a commit in flight right now are never touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from pyarrow.fs import FileSelector, FileSystem, FileType, FSSpecHandler, PyFileSystem
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

from dativo.errors import ConfigError

DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class OrphanReport:
    table: str
    paths: list[str]
    bytes: int


def orphan_data_files(table: Table, *, older_than: timedelta = DEFAULT_GRACE) -> OrphanReport:
    """Data files under ``<table location>/data`` that no snapshot references."""
    io, fs, root = _filesystem(table)
    referenced = {PyArrowFileIO.parse_location(path, io.properties)[2]
                  for path in table.inspect.all_files().column("file_path").to_pylist()}
    cutoff = time.time() - older_than.total_seconds()
    orphans, size = [], 0
    for info in fs.get_file_info(FileSelector(f"{root.rstrip('/')}/data", recursive=True,
                                              allow_not_found=True)):
        if info.type != FileType.File or info.path in referenced:
            continue
        if info.mtime is not None and info.mtime.timestamp() > cutoff:
            continue  # possibly a commit in flight
        orphans.append(info.path)
        size += info.size or 0
    return OrphanReport(".".join(table.name()), orphans, size)


def delete_files(table: Table, report: OrphanReport) -> None:
    _, fs, _ = _filesystem(table)
    for path in report.paths:
        fs.delete_file(path)


def _filesystem(table: Table) -> tuple[FileIO, FileSystem, str]:
    """The table's own FileIO as a pyarrow filesystem (listing), and its root path:
    PyArrowFileIO's filesystem, or FsspecFileIO's (the one that sends S3 server-side
    encryption, docs/security.md) wrapped like pyiceberg wraps it for reads."""
    io = table.io
    scheme, netloc, root = PyArrowFileIO.parse_location(table.location(), io.properties)
    if isinstance(io, PyArrowFileIO):
        return io, io.fs_by_scheme(scheme, netloc), root
    from pyiceberg.io.fsspec import FsspecFileIO

    if isinstance(io, FsspecFileIO):
        return io, PyFileSystem(FSSpecHandler(io.get_fs(scheme))), root
    raise ConfigError(f"table {'.'.join(table.name())}: orphan listing needs pyiceberg's "
                      "PyArrowFileIO or FsspecFileIO (py-io-impl)")
