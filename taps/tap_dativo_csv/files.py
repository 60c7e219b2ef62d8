"""File access for tap-dativo-csv: decoding and CSV rows with line numbers.

Kept apart from the stream so that every way a file can be unreadable is turned into
one :class:`~dativo.errors.CodecError` that names the file and the physical line.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from dativo.errors import CodecError, ConfigError
from dativo.file_taps import text_codec

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one stream's files are encoded and delimited."""

    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"


def _open(path: str, encoding: str) -> TextIO:
    # newline="" is what the csv module needs to see quoted line breaks and count lines.
    return open(path, encoding=text_codec(encoding), errors="strict", newline="")


def rows(path: str, dialect: Dialect) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, cells)`` for every non-blank row; ``line`` is the 1-based physical
    line where the row starts (a quoted cell may span several lines).

    Raises:
        CodecError: The file is not valid in its encoding or is not well-formed CSV.
        ConfigError: The file cannot be opened.
    """
    try:
        handle = _open(path, dialect.encoding)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from exc
    with handle:
        reader = csv.reader(
            handle, delimiter=dialect.delimiter, quotechar=dialect.quotechar, strict=True
        )
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise _decode_error(path, dialect.encoding, exc) from exc
            except csv.Error as exc:
                raise CodecError(
                    f"{path}: malformed CSV ({exc}); check the quoting, or set the "
                    "stream's delimiter/quotechar to match the file",
                    line=start,
                ) from exc
            if cells:
                yield start, cells


def header(path: str, dialect: Dialect) -> tuple[int, list[str]] | None:
    """The first row of the file and its line, or None when the file has no rows."""
    reader = rows(path, dialect)
    try:
        return next(reader, None)
    finally:
        reader.close()


def _decode_error(path: str, encoding: str, exc: UnicodeDecodeError) -> CodecError:
    """Build the error for undecodable bytes, locating the line by re-reading the file.

    The text reader decodes ahead in large chunks, so the row being parsed is not where
    the bad bytes are; this slower scan only runs once, on the way to failing.
    """
    line, offset = _locate(path, encoding)
    return CodecError(
        f"{path}: byte offset {offset} is not valid {encoding} ({exc.reason}); set the "
        "stream's `encoding` to the file's real encoding (for example latin-1 or cp1252) "
        "or re-export the file as UTF-8",
        line=line,
    )


def _locate(path: str, encoding: str) -> tuple[int, int]:
    """Return (1-based line, byte offset) of the first undecodable byte in ``path``."""
    decoder = codecs.getincrementaldecoder(text_codec(encoding))(errors="strict")
    newlines, consumed = 0, 0
    with open(path, "rb") as raw:
        while chunk := raw.read(_CHUNK):
            try:
                newlines += decoder.decode(chunk).count("\n")
            except UnicodeDecodeError as exc:
                # exc.object is any bytes the decoder held back plus this chunk.
                held = len(exc.object) - len(chunk)
                good = exc.object[: exc.start].decode(encoding, errors="replace")
                return newlines + good.count("\n") + 1, consumed - held + exc.start
            consumed += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:  # the file ends inside a multi-byte character
            return newlines + 1, consumed - len(exc.object) + exc.start
    return newlines + 1, consumed
