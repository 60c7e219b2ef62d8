"""``on_invalid_value``: what the tap does with a cell that contradicts its own SCHEMA.

A Singer target may trust a tap's SCHEMA (meltanolabs-target-postgres creates a DATE
column and crashes on ``'2024-13-01'``), so by default such a row is not sent on the
stream: ``reject`` sends it to ``<stream>__rejected`` with its raw text and the reason,
``fail`` stops the run naming file, line and field, and ``pass`` keeps today's
behaviour (the text is sent as is) for a target with a dead-letter table of its own,
such as target-dativo-iceberg.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

from singer_sdk import typing as th
from singer_sdk.helpers._util import utc_now
from singer_sdk.singerlib import RecordMessage, SchemaMessage

from dativo.errors import CodecError
from dativo.file_taps import SOURCE_FILE, SOURCE_LINENO, SOURCE_MTIME, iso, mtime
from dativo.names import REJECTED_STREAM_SUFFIX
from dativo.rejected_rows import REJECTED_KEYS, REJECTED_SCHEMA
from tap_dativo_csv.files import RawLines

OnInvalidValue = Literal["reject", "fail", "pass"]
ON_INVALID_VALUE: tuple[str, ...] = get_args(OnInvalidValue)

SETTING = th.Property(
    "on_invalid_value", th.StringType, default="reject",
    allowed_values=list(ON_INVALID_VALUE),
    description="What to do with a row whose cell contradicts the stream's SCHEMA (a "
                "value that is not of its contract type, an empty required cell, a "
                "string not in its format): `reject` (default) sends the row to the "
                "stream `<stream>__rejected` with its raw line, file, line number and "
                "reason, so every target loads only valid rows; `fail` stops the run "
                "(exit 2) naming the file, line and field; `pass` sends the cell's text "
                "as is, for target-dativo-iceberg, whose contract check puts the row in "
                "its dead-letter table.")

Problems = list[tuple[str, str]]
"""(column, reason) for each invalid cell of one row, in column order."""


def rejected_stream(stream: str) -> str:
    """The name of the stream that receives ``stream``'s rejected rows."""
    return stream + REJECTED_STREAM_SUFFIX


def invalid_value_error(stream: str, path: str, line: int, problems: Problems) -> CodecError:
    """The ``fail`` error: the first invalid cell of the row, and how to go on."""
    field, reason = problems[0]
    more = f" (and {len(problems) - 1} more column(s))" if len(problems) > 1 else ""
    return CodecError(
        f"stream '{stream}': {path}, column {field}: {reason}{more}; fix the file, or set "
        f"on_invalid_value to reject (such rows go to stream '{rejected_stream(stream)}') "
        "or pass (the text is sent as is, for target-dativo-iceberg's dead-letter table)",
        line=line)


class Rejects:
    """Writes one stream's rejected rows as RECORDs of ``<stream>__rejected`` (named
    after the stream's alias, if a stream map gives it one), its SCHEMA first (once,
    before the first rejected row, so a run without rejects does not announce it).

    The rows bypass singer-sdk's selection and stream maps, so they carry nothing those
    would remove: with a column deselected or a stream map on the stream, ``raw_line``
    (every cell) is null, and with a stream map the reasons name only the columns (a
    reason quotes the cell, which the map may hash or drop).
    """

    def __init__(self, stream: Any, write: Callable[[Any], None]) -> None:
        """``stream`` is the :class:`~tap_dativo_csv.streams.CSVStream` (its name,
        ``stream_maps`` and selection ``mask`` are read when the first row is sent)."""
        self._source = stream
        self._write = write
        self.stream: str | None = None
        self._mapped = self._deselected = False
        self.rows = 0

    def write(self, path: str, raw: RawLines, rows: list[tuple[int, list[str], Problems]]
              ) -> None:
        """Send ``(line, cells, problems)`` of each rejected row of ``path``."""
        if self.stream is None:
            source = self._source
            maps = source.stream_maps
            self._mapped = not source.unmapped()
            self._deselected = any(selected is False for breadcrumb, selected
                                   in source.mask.items() if breadcrumb)
            self.stream = rejected_stream(maps[0].stream_alias if maps else source.name)
            self._write(SchemaMessage(self.stream, REJECTED_SCHEMA, REJECTED_KEYS))
        stamp = iso(mtime(path))
        for line, cells, problems in rows:
            record = {SOURCE_FILE: path, SOURCE_LINENO: line, SOURCE_MTIME: stamp,
                      "raw_line": (None if self._mapped or self._deselected
                                   else raw.text(line, cells)),
                      "fields": [field for field, _ in problems],
                      "reason": "; ".join(
                          f"{field}: " + ("the value contradicts the SCHEMA (withheld: "
                                          "a stream map applies)" if self._mapped else why)
                          for field, why in problems)}
            self._write(RecordMessage(stream=self.stream, record=record,
                                      time_extracted=utc_now()))
        self.rows += len(rows)
