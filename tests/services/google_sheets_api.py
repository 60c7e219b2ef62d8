"""A Google Sheets v4 fixture server (plus Drive files and the token endpoint of its base).

Speaks what tap-dativo-google-sheets reads: ``GET /v4/spreadsheets/<id>`` (sheet
properties with ``gridProperties``; with ``includeGridData=true`` and ``ranges``, the
cells' ``effectiveValue`` and ``effectiveFormat.numberFormat``) and ``GET
/v4/spreadsheets/<id>/values:batchGet`` (``ranges`` in A1 notation, ``valueRenderOption``
UNFORMATTED_VALUE or FORMATTED_VALUE, ``dateTimeRenderOption`` SERIAL_NUMBER or
FORMATTED_STRING, ``majorDimension`` ROWS). As Google does, a value range drops trailing
empty cells of each row and trailing empty rows, and an empty cell inside a row is ``""``.

A test writes cells as Python values: ``str``, ``int``/``float``, ``bool``, ``None``
(empty), ``datetime.date``/``datetime.datetime`` (stored as a serial number, days since
1899-12-30, in a cell formatted DATE / DATE_TIME, as Sheets stores dates). Every
spreadsheet is also a Drive file (``mimeType`` spreadsheet, ``modifiedTime``) for
``files.list``/``files.get`` of :class:`~tests.services.google_api.GoogleApi`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from tests.services.google_api import GoogleApi, google_error
from tests.services.http_fixture import Request, Response, json_response

SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
EPOCH = dt.datetime(1899, 12, 30)
MIN_ROWS, MIN_COLUMNS = 1000, 26  # a new sheet's grid, as Sheets creates it


def serial(value: dt.date) -> float | int:
    """Sheets' serial number of a date (whole days) or datetime (fraction of a day)."""
    if isinstance(value, dt.datetime):
        delta = value.replace(tzinfo=None) - EPOCH
        return delta.days + delta.seconds / 86400 + delta.microseconds / 86400e6
    return (value - EPOCH.date()).days


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letters: str) -> int:
    value = 0
    for ch in letters.upper():
        value = value * 26 + ord(ch) - 64
    return value - 1


def parse_a1(text: str) -> tuple[str, int, int | None, int, int | None]:
    """``'My Sheet'!A2:F100`` -> (title, first row, last row, first col, last col), 0-based
    and inclusive; an open end (``A2:F``, ``1:1``, a bare title) is None."""
    if "!" in text:
        title, cells = text.rsplit("!", 1)
    else:
        title, cells = text, ""
    if title.startswith("'") and title.endswith("'"):
        title = title[1:-1].replace("''", "'")
    if not cells:
        return title, 0, None, 0, None
    parts = cells.split(":")
    cell = re.compile(r"([A-Za-z]*)(\d*)")
    start = cell.fullmatch(parts[0])
    end = cell.fullmatch(parts[-1])
    if start is None or end is None:
        raise ValueError(f"Unable to parse range: {text}")
    first_row = int(start[2]) - 1 if start[2] else 0
    last_row = int(end[2]) - 1 if end[2] else None
    first_col = column_index(start[1]) if start[1] else 0
    last_col = column_index(end[1]) if end[1] else None
    return title, first_row, last_row, first_col, last_col


@dataclass
class Sheet:
    title: str
    sheet_id: int
    rows: list[list[Any]]
    row_count: int = MIN_ROWS
    column_count: int = MIN_COLUMNS


@dataclass
class GoogleSheetsApi(GoogleApi):
    """In-memory spreadsheets; :meth:`add_spreadsheet` and :meth:`set_rows` change them."""

    spreadsheets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_spreadsheet(self, title: str, sheets: dict[str, list[list[Any]]], *,
                        parents: list[str] | None = None, spreadsheet_id: str | None = None,
                        time_zone: str = "Etc/GMT") -> str:
        """A spreadsheet with sheets ``{title: rows}`` (row 1 is the header); its id.
        Date-time cells are wall-clock times in ``time_zone``, as Sheets keeps them."""
        meta = self.add_file(title, SPREADSHEET_MIME, parents=parents, file_id=spreadsheet_id)
        with self.lock:
            self.spreadsheets[meta["id"]] = {"title": title, "time_zone": time_zone, "sheets": [
                self._sheet(name, rows, index) for index, (name, rows) in
                enumerate(sheets.items())]}
        return str(meta["id"])

    @staticmethod
    def _sheet(title: str, rows: list[list[Any]], index: int) -> Sheet:
        width = max((len(r) for r in rows), default=0)
        return Sheet(title, 1000 + index, [list(r) for r in rows],
                     row_count=max(MIN_ROWS, len(rows)), column_count=max(MIN_COLUMNS, width))

    def set_rows(self, spreadsheet_id: str, title: str, rows: list[list[Any]], *,
                 touch: bool = True) -> None:
        """Replace a sheet's cells; ``touch`` moves the file's Drive modifiedTime."""
        with self.lock:
            for sheet in self.spreadsheets[spreadsheet_id]["sheets"]:
                if sheet.title == title:
                    sheet.rows = [list(r) for r in rows]
                    sheet.row_count = max(sheet.row_count, len(rows))
            if touch:
                self.touch(spreadsheet_id)

    # -- routing ----------------------------------------------------------------------

    def api_route(self, request: Request) -> Response:
        if match := re.fullmatch(r"/v4/spreadsheets/([^/:]+)/values:batchGet", request.path):
            return self._known(match[1]) or self._batch_get(match[1], request)
        if match := re.fullmatch(r"/v4/spreadsheets/([^/:]+)", request.path):
            return self._known(match[1]) or self._get(match[1], request)
        return self.not_found(request.path)

    def _known(self, spreadsheet_id: str) -> Response | None:
        with self.lock:
            known = spreadsheet_id in self.spreadsheets
        return None if known else self.not_found(f"Spreadsheet {spreadsheet_id}")

    def _find(self, spreadsheet_id: str, title: str) -> Sheet | None:
        return next((s for s in self.spreadsheets[spreadsheet_id]["sheets"]
                     if s.title == title), None)

    @staticmethod
    def _bad(message: str) -> Response:
        return json_response(400, google_error(400, message, "badRequest"))

    def _get(self, spreadsheet_id: str, request: Request) -> Response:
        with self.lock:
            book = self.spreadsheets[spreadsheet_id]
            wanted: dict[str, tuple[int, int | None, int, int | None]] = {}
            for text in request.query.get("ranges", []):
                try:
                    title, *bounds = parse_a1(text)
                except ValueError as exc:
                    return self._bad(str(exc))
                if self._find(spreadsheet_id, title) is None:
                    return self._bad(f"Unable to parse range: {text}")
                wanted[title] = tuple(bounds)  # type: ignore[assignment]
            grid = request.one("includeGridData") == "true"
            sheets = []
            for sheet in book["sheets"]:
                if wanted and sheet.title not in wanted:
                    continue
                entry: dict[str, Any] = {"properties": {
                    "sheetId": sheet.sheet_id, "title": sheet.title, "index": len(sheets),
                    "sheetType": "GRID", "gridProperties": {
                        "rowCount": sheet.row_count, "columnCount": sheet.column_count}}}
                if grid:
                    bounds = wanted.get(sheet.title, (0, None, 0, None))
                    entry["data"] = [self._grid(sheet, *bounds)]
                sheets.append(entry)
        return json_response(200, {
            "spreadsheetId": spreadsheet_id,
            "properties": {"title": book["title"], "locale": "en_US",
                           "timeZone": book["time_zone"]},
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}/edit"})

    @staticmethod
    def _grid(sheet: Sheet, first_row: int, last_row: int | None, first_col: int,
              last_col: int | None) -> dict[str, Any]:
        rows = sheet.rows[first_row:None if last_row is None else last_row + 1]
        row_data = []
        for row in rows:
            cells = row[first_col:None if last_col is None else last_col + 1]
            row_data.append({"values": [_cell_data(cell) for cell in cells]})
        return {"startRow": first_row, "startColumn": first_col, "rowData": row_data}

    def _batch_get(self, spreadsheet_id: str, request: Request) -> Response:
        render = request.one("valueRenderOption", "FORMATTED_VALUE")
        dates = request.one("dateTimeRenderOption", "SERIAL_NUMBER")
        major = request.one("majorDimension", "ROWS")
        if render not in ("UNFORMATTED_VALUE", "FORMATTED_VALUE") or \
                dates not in ("SERIAL_NUMBER", "FORMATTED_STRING") or major != "ROWS":
            return self._bad(f"Invalid value render options: {render}, {dates}, {major}")
        ranges = []
        with self.lock:
            for text in request.query.get("ranges", []):
                try:
                    title, first_row, last_row, first_col, last_col = parse_a1(text)
                except ValueError as exc:
                    return self._bad(str(exc))
                sheet = self._find(spreadsheet_id, title)
                if sheet is None:
                    return self._bad(f"Unable to parse range: {text}")
                rows = sheet.rows[first_row:None if last_row is None else last_row + 1]
                values = [[_value(cell, render, dates) for cell in
                           row[first_col:None if last_col is None else last_col + 1]]
                          for row in rows]
                values = [_trim(row) for row in values]
                while values and not values[-1]:
                    values.pop()
                quoted = "'" + title.replace("'", "''") + "'"
                entry: dict[str, Any] = {"range": f"{quoted}!{text.rsplit('!', 1)[-1]}",
                                         "majorDimension": major}
                if values:
                    entry["values"] = values
                ranges.append(entry)
        return json_response(200, {"spreadsheetId": spreadsheet_id, "valueRanges": ranges})


def _trim(row: list[Any]) -> list[Any]:
    while row and row[-1] == "":
        row = row[:-1]
    return row


def _value(cell: Any, render: str, dates: str) -> Any:
    if cell is None:
        return ""
    if isinstance(cell, dt.date):
        if dates == "FORMATTED_STRING" or render == "FORMATTED_VALUE":
            return cell.isoformat(sep=" ") if isinstance(cell, dt.datetime) \
                else cell.isoformat()
        return serial(cell)
    if render == "FORMATTED_VALUE":
        return ("TRUE" if cell else "FALSE") if isinstance(cell, bool) else str(cell)
    return cell


def _cell_data(cell: Any) -> dict[str, Any]:
    """A CellData: effectiveValue and, for a date, its DATE / DATE_TIME number format."""
    if cell is None:
        return {}
    if isinstance(cell, bool):
        return {"effectiveValue": {"boolValue": cell}}
    if isinstance(cell, dt.date):
        kind = "DATE_TIME" if isinstance(cell, dt.datetime) else "DATE"
        pattern = "yyyy-mm-dd hh:mm:ss" if kind == "DATE_TIME" else "yyyy-mm-dd"
        return {"effectiveValue": {"numberValue": serial(cell)},
                "effectiveFormat": {"numberFormat": {"type": kind, "pattern": pattern}}}
    if isinstance(cell, (int, float)):
        return {"effectiveValue": {"numberValue": cell}}
    return {"effectiveValue": {"stringValue": str(cell)}}
