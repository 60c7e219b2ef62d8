"""singer-sdk BATCH messages: check the message, and turn its manifest into batches.

A BATCH message (``{"type":"BATCH","stream":s,"encoding":{"format":"jsonl"|"parquet",
"compression":"gzip"|"none"},"manifest":[uri, ...]}``) names files the tap wrote,
local (``file://`` or a plain path) or in S3 (``s3://``). Every entry must be admitted
by the target's ``batch_roots`` and ``batch_max_file_bytes`` (see :mod:`batch_roots`)
before any file of the message is read. Each file becomes one or more batches that
go through the same contract checks, dead-letter table and commit-then-STATE pipeline
as RECORD lines (jsonl:
:mod:`batch_jsonl`; Parquet: :mod:`batch_parquet`). Rejected rows keep their record
as JSON and the BATCH message's input line; errors name that line, the file and the
row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dativo.errors import CodecError
from target_dativo_iceberg.batch_jsonl import jsonl_batches
from target_dativo_iceberg.batch_parquet import parquet_batches
from target_dativo_iceberg.batch_roots import (
    BatchFilePolicy,
    BatchSource,
    RefusedFile,
    shown_uri,
)
from target_dativo_iceberg.batch_sources import BatchFormat, BatchMessage, unreadable
from target_dativo_iceberg.batches import Batch

FORMATS: tuple[BatchFormat, ...] = ("jsonl", "parquet")
COMPRESSIONS = ("gzip", "none")


def parse_batch_message(message: dict[str, Any], line: int) -> BatchMessage:
    """Check a BATCH message's shape.

    Raises:
        CodecError: A key is missing or has an unsupported value; names the key.
    """
    stream = message.get("stream")
    if not isinstance(stream, str):
        raise CodecError("BATCH message has no string 'stream'", line=line)
    encoding = message.get("encoding")
    if not isinstance(encoding, dict):
        raise CodecError(f"BATCH for stream '{stream}' has no object 'encoding'", line=line)
    fmt = encoding.get("format")
    if fmt not in FORMATS:
        raise CodecError(f"BATCH for stream '{stream}': encoding.format {fmt!r} is not "
                         f"supported; use one of {', '.join(FORMATS)}", line=line)
    compression = encoding.get("compression") or "none"
    if compression not in COMPRESSIONS:
        raise CodecError(f"BATCH for stream '{stream}': encoding.compression "
                         f"{compression!r} is not supported; use gzip or none", line=line)
    manifest = message.get("manifest")
    if not isinstance(manifest, list) or not all(isinstance(u, str) for u in manifest):
        raise CodecError(f"BATCH for stream '{stream}': 'manifest' must be a list of "
                         "file URIs", line=line)
    version = message.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise CodecError(f"BATCH for stream '{stream}': 'version' must be an integer, got "
                         f"{version!r}", line=line)
    return BatchMessage(stream, fmt, compression, tuple(manifest), line, version)


def manifest_batches(message: BatchMessage, spool_dir: Path, batch_size_rows: int,
                     batch_max_bytes: int, policy: BatchFilePolicy
                     ) -> Iterator[Batch]:
    """Yield the checkable batches of every manifest file, in manifest order, once
    ``policy`` admitted every file of the manifest (so a refused entry loads nothing
    of its message).

    Raises:
        CodecError: A file is refused, or cannot be opened or decoded; names the line,
            the file and, for a refusal, the setting to change.
    """
    sources = [admitted(message, uri, policy) for uri in message.manifest]
    for source in sources:
        if message.format == "jsonl":
            yield from jsonl_batches(message, source, spool_dir, batch_size_rows,
                                     batch_max_bytes)
        else:
            yield from parquet_batches(message, source, spool_dir, batch_size_rows)


def admitted(message: BatchMessage, uri: str, policy: BatchFilePolicy) -> BatchSource:
    """The file ``uri`` names, if ``policy`` admits it (stats it, reads nothing).

    Raises:
        CodecError: Refused, or missing; names the line, the file and the setting.
    """
    try:
        return policy.admit(uri)
    except (RefusedFile, OSError) as exc:
        raise unreadable(message.stream, message.line, shown_uri(uri), exc) from exc
