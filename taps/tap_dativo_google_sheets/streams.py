"""One stream per sheet: rows read with values.batchGet in pages, keyed by ``_sdc_row``.

Sheets has no row-level change feed: a stream re-reads its whole sheet when the
spreadsheet's Drive ``modifiedTime`` moved past the bookmark (``_sdc_modified_time``, the
replication key), and emits nothing otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from dativo.errors import ConfigError
from tap_dativo_google_sheets.cells import column_letter, converter, quote_title

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from dativo.google_auth import GoogleSession

ROW = "_sdc_row"
MODIFIED = "_sdc_modified_time"
SPREADSHEET = "_sdc_spreadsheet_id"


@dataclass(frozen=True)
class SheetSpec:
    """A sheet as discovery found it: where it is and what its columns are."""

    spreadsheet_id: str
    spreadsheet_title: str
    title: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    time_zone: str
    contract: str | None = None
    header_row: int = 1  # 1-based; data starts below it
    first_column: int = 0  # 0-based
    last_row: int | None = None  # a configured range's end; None: the grid's last row


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class SheetStream(Stream):
    """The rows of one sheet (row 1 is the header)."""

    primary_keys: ClassVar[list[str]] = [ROW]
    # singer-sdk's conformance would rewrite a value that does not fit its type (any
    # non-empty string in a boolean column becomes True); such a value must reach the
    # target unchanged, for its dead-letter table. The converted values are JSON-ready.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    replication_key = MODIFIED
    is_sorted = True  # every record of a run carries the same modifiedTime

    def __init__(self, tap: Any, name: str, spec: SheetSpec, schema: dict[str, Any]) -> None:
        self.spec = spec
        super().__init__(tap, schema=schema, name=name)

    @property
    def sheets(self) -> GoogleSession:
        return self._tap.sheets  # type: ignore[attr-defined, no-any-return]

    @property
    def drive(self) -> GoogleSession:
        return self._tap.drive  # type: ignore[attr-defined, no-any-return]

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        spec = self.spec
        modified = self.drive.get_json(f"/drive/v3/files/{spec.spreadsheet_id}",
                                       {"fields": "modifiedTime",
                                        "supportsAllDrives": "true"})["modifiedTime"]
        bookmark = self.get_starting_replication_key_value(context)
        if bookmark and parse_time(modified) <= parse_time(str(bookmark)):
            self.logger.info("%s: spreadsheet %s unchanged since %s (Drive modifiedTime); "
                             "nothing to read", self.name, spec.spreadsheet_id, modified)
            return
        rows = self._row_count()
        if spec.last_row is not None:
            rows = min(rows, spec.last_row)
        page = int(self.config.get("page_rows") or 10_000)
        zone = ZoneInfo(spec.time_zone)
        convert = [converter(kind, zone) for kind in spec.kinds]
        width = len(spec.columns)
        first = column_letter(spec.first_column)
        last = column_letter(spec.first_column + width - 1)
        for start in range(spec.header_row + 1, rows + 1, page):
            end = min(rows, start + page - 1)
            a1 = f"{quote_title(spec.title)}!{first}{start}:{last}{end}"
            body = self.sheets.get_json(
                f"/v4/spreadsheets/{spec.spreadsheet_id}/values:batchGet",
                {"ranges": a1, "valueRenderOption": "UNFORMATTED_VALUE",
                 "dateTimeRenderOption": "SERIAL_NUMBER", "majorDimension": "ROWS"})
            ranges = body.get("valueRanges") or [{}]
            for offset, cells in enumerate(ranges[0].get("values") or []):
                if not any(cell != "" for cell in cells):
                    continue  # a blank row
                cells = [*cells[:width], *[""] * (width - len(cells))]  # ragged: pad
                record = {name: fn(cell) for name, fn, cell in zip(spec.columns, convert, cells,
                                                                    strict=True)}
                record.update({ROW: start + offset, MODIFIED: modified,
                               SPREADSHEET: spec.spreadsheet_id})
                yield record

    def _row_count(self) -> int:
        """The sheet's grid rows now (it may have grown since discovery)."""
        book = self.sheets.get_json(
            f"/v4/spreadsheets/{self.spec.spreadsheet_id}",
            {"fields": "sheets.properties", "includeGridData": "false"})
        for sheet in book.get("sheets") or []:
            props = sheet.get("properties") or {}
            if props.get("title") == self.spec.title:
                return int((props.get("gridProperties") or {}).get("rowCount") or 0)
        raise ConfigError(f"stream {self.name}: spreadsheet {self.spec.spreadsheet_id} has no "
                          f"sheet {self.spec.title!r} any more; run --discover again")
