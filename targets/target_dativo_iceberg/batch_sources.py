"""Where BATCH files come from: the decoded message, and opening its admitted files.

Shared by the jsonl and Parquet readers (:mod:`batch_jsonl`, :mod:`batch_parquet`).
Files are first admitted by :mod:`batch_roots` (inside ``batch_roots``, regular,
within ``batch_max_file_bytes``); every open here checks again on what was actually
opened, so a file swapped for a symlink, FIFO or bigger file after admission is
refused, not read. Every way a file cannot be opened becomes one
:class:`~dativo.errors.CodecError` naming the BATCH message's line and the file.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal
from urllib.parse import quote

import pyarrow as pa

from dativo.errors import CodecError
from target_dativo_iceberg.batch_roots import (
    BatchSource,
    LocalFile,
    RefusedFile,
    S3Object,
    check_stat,
    too_big,
)
from target_dativo_iceberg.batches import Batch

LOGGER = logging.getLogger(__name__)
BatchFormat = Literal["jsonl", "parquet"]
_FIX_HINT = ("check that the tap's batch_config storage is readable from the target "
             "(same machine or shared storage, credentials in the environment)")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
_FD_DIR = "/proc/self/fd"
READ_BYTES = 8 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """A decoded BATCH message."""

    stream: str
    format: BatchFormat
    compression: str
    manifest: tuple[str, ...]
    line: int
    version: int | None = None
    """Table version of the rows (FULL_TABLE syncs with ACTIVATE_VERSION), if sent."""


@dataclass(kw_only=True)
class FilePart:
    """Where a batch of a BATCH message comes from: every row is the message's input
    line (``batch_line``) in errors and dead letters, and logs also name the file and
    the row in it."""

    uri: str
    batch_line: int
    first_row: int = 0  # rows of the file before this batch
    version: int | None = None  # the BATCH message's, for every row

    def where(self, row: int) -> str:
        """``file <uri> row <n>`` for the batch's 0-based row ``row``."""
        return f"file {self.uri} row {self.first_row + row + 1}"

    def log_rejected(self, stream: str, rows: list[int]) -> None:
        """Log the file and row of the first rejected row, which the dead-letter rows
        (keyed by the BATCH message's line) cannot hold."""
        LOGGER.info("Stream '%s': %d row(s) of BATCH %s rejected", stream, len(rows),
                    self.where(rows[0]))


@dataclass(kw_only=True)
class TapFileBatch(FilePart, Batch):
    """Rows read straight from the tap's file on the check thread: nothing is buffered
    for them, and the file is the tap's, so :meth:`discard` leaves it alone."""

    source: BatchSource  # the file, as admitted by batch_roots

    @property
    def bytes(self) -> int:
        return 0

    def discard(self) -> None:
        """Nothing to delete: the file belongs to the tap."""


def open_input(source: BatchSource) -> IO[bytes]:
    """Open an admitted file for reading (the caller closes it).

    Local files: see :func:`_open_local_fd`; ``s3://`` objects through pyarrow's S3
    filesystem (credentials and endpoint from the usual AWS environment variables).

    Raises:
        RefusedFile: What was opened is no longer a regular file within the size cap.
        OSError, pyarrow.ArrowException: The file cannot be opened.
    """
    if isinstance(source, LocalFile):
        return os.fdopen(_open_local_fd(source), "rb")
    return _open_s3(source)  # type: ignore[return-value]


def open_native(source: BatchSource) -> pa.NativeFile:
    """Like :func:`open_input`, as a pyarrow file, so pyarrow's readers (and their
    threads) read without going through Python."""
    if isinstance(source, S3Object):
        return _open_s3(source)
    fd = _open_local_fd(source)
    if not os.path.isdir(_FD_DIR):  # no /proc: read through Python instead
        return pa.PythonFile(os.fdopen(fd, "rb"), mode="r")
    try:
        # /proc/self/fd/N re-opens the file this descriptor holds, not a path.
        return pa.OSFile(f"{_FD_DIR}/{fd}", "rb")
    finally:
        os.close(fd)


def _open_local_fd(source: LocalFile) -> int:
    """Open ``root/parts`` one component at a time, none a symlink (``O_NOFOLLOW``),
    the file non-blocking (a FIFO cannot hang the open), then check the descriptor.

    Raises:
        RefusedFile: A component became a symlink, or the file is not a regular file
            within the size cap.
        OSError: The file cannot be opened.
    """
    dir_fd = os.open(source.root, _DIR_FLAGS)
    try:
        for part in source.parts[:-1]:
            next_fd = _open_at(part, _DIR_FLAGS | _NOFOLLOW, dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        fd = _open_at(source.parts[-1], _FILE_FLAGS, dir_fd)
    finally:
        os.close(dir_fd)
    try:
        check_stat(os.fstat(fd), source.max_bytes)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_at(name: str, flags: int, dir_fd: int) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        # O_NOFOLLOW on a symlink: ELOOP (FreeBSD: EMLINK); with O_DIRECTORY: ENOTDIR.
        if exc.errno in (errno.ELOOP, errno.EMLINK) or (
                exc.errno == errno.ENOTDIR and _is_symlink(name, dir_fd)):
            raise RefusedFile("changed into a symlink after it was checked; the target "
                              "reads only regular files under batch_roots") from exc
        raise


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _open_s3(source: S3Object) -> pa.NativeFile:
    import pyarrow.fs as pa_fs

    uri = f"s3://{source.bucket}/{quote(source.key, safe='/')}"
    filesystem, path = pa_fs.FileSystem.from_uri(uri)
    if path != f"{source.bucket}/{source.key}":  # pyarrow read the URI otherwise
        raise RefusedFile(f"is read by pyarrow as {path!r}; name the object as "
                          "s3://bucket/key under batch_roots")
    handle = filesystem.open_input_file(path)
    try:
        size = handle.size()
        if size > source.max_bytes:
            raise too_big(f"{size} bytes", source.max_bytes)
    except BaseException:
        handle.close()
        raise
    return handle  # type: ignore[no-any-return]


def decompressed_blocks(message: BatchMessage, source: BatchSource) -> Iterator[bytes]:
    """The file's bytes in blocks, gunzipped when gzip is declared or detected, at most
    ``batch_max_file_bytes`` of them (a gzip bomb, or a file still growing, stops).

    singer-sdk 0.54's jsonl batcher gzips every file whatever ``compression`` says,
    so the gzip magic number decides, not only the message.
    """
    uri = source.uri
    try:
        raw = open_input(source)
    except (OSError, pa.ArrowException, ValueError) as exc:  # RefusedFile included
        raise unreadable(message.stream, message.line, uri, exc) from exc
    total = 0
    try:
        with raw:
            block = raw.read(READ_BYTES)
            gzipped = block[:2] == GZIP_MAGIC or message.compression == "gzip"
            for data in _gunzip(block, raw) if gzipped else _blocks(block, raw):
                total += len(data)
                if total > source.max_bytes:
                    what = "inflated" if gzipped else "read (the file grew)"
                    raise too_big(f"more than {source.max_bytes} bytes {what}",
                                  source.max_bytes)
                yield data
    except (OSError, EOFError, zlib.error, pa.ArrowException, RefusedFile) as exc:
        raise unreadable(message.stream, message.line, uri, exc) from exc


class BlockReader(io.RawIOBase):
    """A readable file over an iterator of byte blocks (pyarrow reads it in C-sized
    chunks; errors raised by the iterator reach the caller unchanged)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        super().__init__()
        self._blocks = blocks
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._rest = memoryview(block)
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def _blocks(block: bytes, raw: IO[bytes]) -> Iterator[bytes]:
    while block:
        yield block
        block = raw.read(READ_BYTES)


def _gunzip(block: bytes, raw: IO[bytes]) -> Iterator[bytes]:
    """Inflate gzip members (zlib directly: about twice as fast as ``gzip.GzipFile``).

    Raises:
        EOFError: The file ends inside a member (a truncated file).
    """
    inflate = zlib.decompressobj(wbits=31)
    while block:
        data = block
        while data:  # output is capped per call, so memory stays bounded
            out = inflate.decompress(data, READ_BYTES)
            if out:
                yield out
            if not inflate.eof:
                data = inflate.unconsumed_tail
            elif data := inflate.unused_data:  # concatenated members
                inflate = zlib.decompressobj(wbits=31)
        block = raw.read(READ_BYTES)
    if not inflate.eof:
        raise EOFError("the gzip data ends early (truncated file)")


def unreadable(stream: str, line: int, uri: str, exc: BaseException) -> CodecError:
    """The error for a manifest file that is refused, or cannot be opened or decoded."""
    if isinstance(exc, RefusedFile):
        return refused(stream, line, uri, exc)
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return CodecError(f"stream '{stream}': BATCH manifest file {uri} cannot be read "
                      f"({type(exc).__name__}: {reason}); {_FIX_HINT}", line=line)


def refused(stream: str, line: int, uri: str, exc: RefusedFile) -> CodecError:
    """The error for a manifest file the target will not read (see :mod:`batch_roots`)."""
    return CodecError(f"stream '{stream}': BATCH manifest file {uri} {exc}", line=line)
