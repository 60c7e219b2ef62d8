"""Where BATCH files come from: the decoded message, and opening its manifest URIs.

Shared by the jsonl and Parquet readers (:mod:`batch_jsonl`, :mod:`batch_parquet`);
every way a file cannot be opened becomes one :class:`~dativo.errors.CodecError`
naming the BATCH message's line and the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Literal
from urllib.parse import urlparse

import pyarrow as pa

from dativo.errors import CodecError

BatchFormat = Literal["jsonl", "parquet"]
_FIX_HINT = ("check that the tap's batch_config storage is readable from the target "
             "(same machine or shared storage, credentials in the environment)")


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


def open_input(uri: str) -> IO[bytes]:
    """Open a manifest URI for reading, as singer-sdk's readers would find it.

    ``file://`` URIs and plain paths are opened directly; other schemes through
    pyarrow's filesystems (s3, gs, hdfs; credentials and endpoint from the usual
    environment variables), then fsspec for anything pyarrow does not know.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return open(_local_path(uri), "rb")  # the caller closes it
    import pyarrow.fs as pa_fs

    try:
        filesystem, path = pa_fs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec

        return fsspec.open(uri, "rb").open()  # type: ignore[no-any-return]
    return filesystem.open_input_file(path)  # type: ignore[no-any-return]


def open_native(uri: str) -> pa.NativeFile:
    """Like :func:`open_input`, as a pyarrow file, so pyarrow's readers (and their
    threads) read without going through Python."""
    if urlparse(uri).scheme in ("", "file"):
        return pa.OSFile(_local_path(uri), "rb")
    handle = open_input(uri)
    return handle if isinstance(handle, pa.NativeFile) else pa.PythonFile(handle, mode="r")


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    from urllib.request import url2pathname

    return url2pathname(parsed.path)


def unreadable(stream: str, line: int, uri: str, exc: BaseException) -> CodecError:
    """The error for a manifest file that cannot be opened or decoded."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return CodecError(f"stream '{stream}': BATCH manifest file {uri} cannot be read "
                      f"({type(exc).__name__}: {reason}); {_FIX_HINT}", line=line)
