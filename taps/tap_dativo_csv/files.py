"""File access for tap-dativo-csv: decoding and CSV rows with line numbers.

Kept apart from the stream so that every way a file can be unreadable is turned into
one :class:`~dativo.errors.CodecError` that names the file and the physical line.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, TextIO

from dativo.errors import CodecError, ConfigError
from dativo.file_taps import text_codec

_CHUNK = 1 << 20
CHUNK_ROWS = 500
"""Rows read, converted and written together (see :func:`row_chunks`)."""

Chunk = tuple[list[int], list[list[str]]]
"""(1-based start line of each row, the rows' cells); blank lines are left out."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one stream's files are encoded and delimited."""

    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"


def _open(path: str, encoding: str) -> TextIO:
    # newline="" is what the csv module needs to see quoted line breaks and count lines.
    return open(path, encoding=text_codec(encoding), errors="strict", newline="")


@contextmanager
def _reader(path: str, dialect: Dialect) -> Iterator[Any]:
    """A strict ``csv.reader`` over the file, closed on exit.

    Raises:
        ConfigError: The file cannot be opened.
    """
    try:
        handle = _open(path, dialect.encoding)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from exc
    with handle:
        yield csv.reader(
            handle, delimiter=dialect.delimiter, quotechar=dialect.quotechar, strict=True
        )


def rows(path: str, dialect: Dialect) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, cells)`` for every non-blank row; ``line`` is the 1-based physical
    line where the row starts (a quoted cell may span several lines).

    Raises:
        CodecError: The file is not valid in its encoding or is not well-formed CSV.
        ConfigError: The file cannot be opened.
    """
    with _reader(path, dialect) as reader:
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


def row_chunks(path: str, dialect: Dialect, size: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Yield the file's non-blank rows ``size`` at a time, as :func:`rows` does one by one.

    The rows of a chunk are parsed by one ``islice`` over the reader (no Python code per
    row); their start lines follow from the reader's line count, or, when a quoted cell
    spans lines, from the line breaks the cells hold.

    Raises:
        CodecError: As :func:`rows`, naming the line where the bad row starts (found
            by re-reading the file with :func:`rows`, on the way to failing).
        ConfigError: The file cannot be opened.
    """
    with _reader(path, dialect) as reader:
        while True:
            before = reader.line_num
            try:
                chunk = list(islice(reader, size))
            except (csv.Error, UnicodeDecodeError):
                for _ in rows(path, dialect):  # raises the error with the row's line
                    pass
                raise
            if not chunk:
                return
            if reader.line_num - before == len(chunk):
                lines = list(range(before + 1, before + 1 + len(chunk)))
            else:
                lines = _start_lines(before, chunk)
            if [] in chunk:
                kept = [i for i, cells in enumerate(chunk) if cells]
                lines, chunk = [lines[i] for i in kept], [chunk[i] for i in kept]
            yield lines, chunk


def line_breaks(cells: list[str]) -> int:
    """Line breaks inside the row's cells, counted as the reader counts lines."""
    return sum(cell.count("\n") + cell.count("\r") - cell.count("\r\n") for cell in cells)


def _start_lines(before: int, chunk: list[list[str]]) -> list[int]:
    lines, line = [], before + 1
    for cells in chunk:
        lines.append(line)
        line += 1 + line_breaks(cells)
    return lines


class RawLines:
    """The text of a file's rows as written, for rejected rows.

    Reads forward only, as rejected rows come in line order, so a file with rejects is
    read a second time at most once, and one without is never opened here.
    """

    def __init__(self, path: str, dialect: Dialect) -> None:
        self.path, self.dialect = path, dialect
        self._handle: TextIO | None = None
        self._next = 1

    def text(self, line: int, cells: list[str]) -> str:
        """The physical lines of the row starting at ``line``, without the final line
        break."""
        if self._handle is None or line < self._next:
            self.close()
            self._handle, self._next = _open(self.path, self.dialect.encoding), 1
        count = 1 + line_breaks(cells)
        skip = line - self._next
        text = "".join(islice(self._handle, skip, skip + count))
        self._next = line + count
        return text.removesuffix("\n").removesuffix("\r")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


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
