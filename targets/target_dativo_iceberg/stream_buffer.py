"""Per-stream buffers of raw RECORD lines, handed off as batches at each drain."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from dativo.open_files import OpenFiles
from target_dativo_iceberg.batch_spooled import SpooledBatch
from target_dativo_iceberg.batches import Batch, RejectedRecord

_SPOOL_BUFFER_BYTES = 1024 * 1024


class StreamBuffer:
    """Spools one stream's raw RECORD lines; ``detach`` hands the batch off for checking.

    The spool file is created at the first record, and its handle is held open only
    while ``open_files`` allows: an idle stream's handle is closed (flushed) when more
    recent streams need one, and reopened for appending at its next record, so the
    descriptors and write buffers a run holds do not grow with its stream count.
    """

    def __init__(self, stream: str, spool_dir: Path, open_files: OpenFiles | None = None) -> None:
        self.stream = stream
        self._spool_dir = spool_dir
        self._open_files = open_files
        self._file: BinaryIO | None = None
        self._new_batch()

    def _new_batch(self) -> None:
        self.batch = SpooledBatch(self.stream, "")  # the file is created at the first row
        self._adopted: Batch | None = None

    def _spool(self) -> BinaryIO:
        """The spool's write handle, (re)opened if it is not open."""
        if self._file is not None:
            if self._open_files is not None:
                self._open_files.used(self)
            return self._file
        if self.batch.path:
            self._file = open(self.batch.path, "ab", buffering=_SPOOL_BUFFER_BYTES)  # noqa: SIM115
        else:
            fd, self.batch.path = tempfile.mkstemp(prefix=f"{_safe(self.stream)}-",
                                                   suffix=".ndjson", dir=self._spool_dir)
            self._file = os.fdopen(fd, "wb", buffering=_SPOOL_BUFFER_BYTES)
        if self._open_files is not None:
            self._open_files.opened(self, self._close_file)
        return self._file

    def _close_file(self) -> None:
        file, self._file = self._file, None  # forgotten even if flushing it fails
        if self._open_files is not None:
            self._open_files.closed(self)
        if file is not None:
            file.close()

    @property
    def rows(self) -> int:
        """Buffered rows; an adopted BATCH file counts as at least one, since a file
        read lazily on the check thread learns its row count only there."""
        if self._adopted is not None:
            return max(self._adopted.rows, 1)
        return self.batch.received

    def set_aside(self, reference: RejectedRecord) -> None:
        """Queue the dead-letter reference of a RECORD too big to spool."""
        self.batch.set_aside.append(reference)

    @property
    def bytes(self) -> int:
        return (self._adopted or self.batch).bytes

    def adopt(self, batch: Batch) -> None:
        """Make ``batch`` (one file of a BATCH message, see ``batch_messages``) the next
        batch ``detach`` returns. The buffer must be empty, so no record is reordered."""
        if self.rows:
            raise RuntimeError("adopt() needs an empty buffer; drain it first")
        self._adopted = batch

    def append(self, lines: bytes, first_line: int, count: int) -> None:
        """Spool ``count`` newline-terminated RECORD lines that start at ``first_line``."""
        batch = self.batch
        self._spool().write(lines)
        batch.run_rows.append(batch.rows)
        batch.run_lines.append(first_line)
        batch.rows += count
        batch.bytes += len(lines)

    def detach(self) -> SpooledBatch:
        """Close the current spool and start a new one; the caller owns the result."""
        if self._adopted is not None:
            batch, self._adopted = self._adopted, None
            return batch
        self._close_file()
        batch = self.batch
        self._new_batch()
        return batch

    def close(self) -> None:
        self._close_file()
        self.batch.discard()
        if self._adopted is not None:
            self._adopted.discard()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:50]
