"""Read Singer messages from a byte stream and dispatch them to the :class:`Loader`.

Input is read in large blocks. Runs of consecutive RECORD lines of one stream, written
the way singer-sdk taps write them (``{"type":"RECORD","stream":"..."``), are found
by one vectorised scan (:mod:`~target_dativo_iceberg.record_runs`) and handed to the
stream's spool in a single call, so there is no per-record Python work at all.
Every other line is decoded with orjson; a BATCH message's files are read by
:mod:`~target_dativo_iceberg.batch_messages`. Every protocol error names its 1-based
input line.
"""

from __future__ import annotations

from typing import IO, Any

import orjson

from dativo.errors import CodecError
from dativo.schema_messages import json_type_name
from target_dativo_iceberg.batch_messages import manifest_batches, parse_batch_message
from target_dativo_iceberg.input_timer import input_waiter, next_chunk
from target_dativo_iceberg.loader import Loader
from target_dativo_iceberg.oversized import PartialLine, set_aside
from target_dativo_iceberg.record_runs import FAST_RECORD_MEMBER, FAST_RECORD_PREFIX, RunFinder

BLOCK_BYTES = 8 * 1024 * 1024
_PREFIX_LEN = len(FAST_RECORD_PREFIX)
_RECORD_KEY = b'"record"'


def run_message_loop(source: IO[bytes], loader: Loader, block_bytes: int = BLOCK_BYTES) -> int:
    """Consume ``source`` to the end; return the number of lines read.

    Raises:
        CodecError: A line is not JSON, has an unknown type, or breaks message order.
    """
    finder = RunFinder()
    line_number = 0
    limit = loader.settings.max_record_bytes
    # A line inside one block is within the limit; only a line spanning blocks (kept in
    # ``pending``) must be measured, so no line is ever looked at one by one.
    block_bytes = min(block_bytes, limit)
    pending = PartialLine(limit)
    # read1 returns whatever the pipe holds instead of waiting for a full block, and
    # the wait for input ends when the loader's flush timer is due (see input_timer),
    # so a tap that pauses mid-stream still gets its rows committed and STATE emitted.
    read = getattr(source, "read1", source.read)
    wait = input_waiter(source)
    while chunk := next_chunk(read, block_bytes, wait, loader, loader.progress):
        end = chunk.rfind(b"\n") + 1
        if not end:
            pending.add(chunk)
            continue
        start = 0
        if pending:  # finish the line split across chunks without copying the chunk
            start = chunk.index(b"\n") + 1
            line_number = _finish_line(pending, chunk[:start], line_number, loader, finder)
        line_number = _process_block(chunk, start, end, line_number, loader, finder)
        pending.add(chunk[end:])
    if pending:
        line_number = _finish_line(pending, b"\n", line_number, loader, finder)
    return line_number


def _finish_line(pending: PartialLine, rest: bytes, line_number: int, loader: Loader,
                 finder: RunFinder) -> int:
    """Dispatch the line that ``pending`` started and ``rest`` (up to its newline) ends;
    a line over ``max_record_bytes`` is set aside (see :func:`set_aside`)."""
    line = pending.finish(rest)
    if line is None:
        set_aside(pending, line_number + 1, loader)
        pending.clear()
        return line_number + 1
    pending.clear()
    return _process_block(line, 0, len(line), line_number, loader, finder)


def _process_block(data: bytes, pos: int, size: int, line_number: int, loader: Loader,
                   finder: RunFinder) -> int:
    """Dispatch every line of ``data[pos:size]`` (which ends with a newline)."""
    while pos < size:
        if data.startswith(FAST_RECORD_PREFIX, pos):
            quote = data.find(b'"', pos + _PREFIX_LEN)
            stream = data[pos + _PREFIX_LEN : quote]
            name = _fast_stream_name(data, quote, stream)
            if name is not None:
                end, count = finder.run(data, pos, size, stream)
                loader.on_records(name, data[pos:end], line_number + 1, count)
                line_number += count
                pos = end
                continue
        end = data.index(b"\n", pos) + 1
        line_number += 1
        line = data[pos:end]
        if line.strip():
            _dispatch(_decode(line, line_number), line, line_number, loader)
        pos = end
    return line_number


def _fast_stream_name(data: bytes, quote: int, stream: bytes) -> str | None:
    """The stream of a fast-path run, or ``None`` to decode the line on its own (an
    escaped or non-UTF-8 name, or no record object right after it)."""
    if quote < 0 or b"\\" in stream or b"\n" in stream:
        return None
    if not data.startswith(FAST_RECORD_MEMBER, quote):
        return None
    try:
        return stream.decode()
    except UnicodeDecodeError:
        return None


def _decode(line: bytes, line_number: int) -> dict[str, Any]:
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        head = line[:80]
        record = head.find(_RECORD_KEY)  # quote no value of a record: it may be one
        if record >= 0:  # of an encrypted column, never to be seen in plaintext
            head = head[:record + len(_RECORD_KEY)] + b" ..."
        snippet = head.decode("utf-8", "replace").rstrip()
        raise CodecError(f"not valid JSON ({exc}): {snippet!r}", line=line_number) from exc
    if not isinstance(message, dict):
        raise CodecError("a Singer message must be a JSON object", line=line_number)
    return message


def _require(message: dict[str, Any], key: str, line_number: int) -> Any:
    if key not in message:
        raise CodecError(f"{message.get('type')} message has no '{key}'", line=line_number)
    return message[key]


def _dispatch(message: dict[str, Any], line: bytes, line_number: int, loader: Loader) -> None:
    kind = message.get("type")
    if kind == "RECORD":
        stream = _require(message, "stream", line_number)
        if not isinstance(message.get("record"), dict):
            raise CodecError(f"RECORD for stream '{stream}' has no object 'record'",
                             line=line_number)
        loader.on_records(stream, line, line_number, 1)
    elif kind == "SCHEMA":
        stream = _require(message, "stream", line_number)
        schema = _require(message, "schema", line_number)
        if not isinstance(schema, dict):
            raise CodecError(f"SCHEMA for stream '{stream}' is not an object", line=line_number)
        try:
            loader.on_schema(stream, schema, list(message.get("key_properties") or []))
        except CodecError as exc:
            raise CodecError(str(exc), line=line_number) from exc
    elif kind == "STATE":
        value = _require(message, "value", line_number)
        if not isinstance(value, dict):
            # singer-sdk's targets refuse it too: Meltano stores the value as the bookmark.
            raise CodecError(f"STATE value must be a JSON object, not {json_type_name(value)}; "
                             "the tap must send its bookmarks as an object",
                             line=line_number)
        loader.on_state(value)
    elif kind == "ACTIVATE_VERSION":
        stream = _require(message, "stream", line_number)
        version = _require(message, "version", line_number)
        if not isinstance(version, int) or isinstance(version, bool):
            raise CodecError(f"ACTIVATE_VERSION for stream '{stream}' has a non-integer "
                             f"version {version!r}", line=line_number)
        loader.on_activate_version(stream, version)
    elif kind == "BATCH":
        batch = parse_batch_message(message, line_number)
        settings = loader.settings
        loader.on_batch(batch.stream, manifest_batches(
            batch, loader.spool_dir, settings.batch_size_rows, settings.batch_max_bytes,
            settings.batch_files),
            line_number)
    else:
        raise CodecError(
            f"unknown Singer message type {kind!r}; expected SCHEMA, RECORD, STATE, "
            "ACTIVATE_VERSION or BATCH", line=line_number,
        )
