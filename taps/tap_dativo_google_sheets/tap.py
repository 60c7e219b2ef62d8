"""tap-dativo-google-sheets: every sheet of some spreadsheets (or of a Drive folder) to Singer.

Discovery reads each spreadsheet's sheets (``spreadsheets.get``) and a sample of their
cells with formats (``includeGridData``): row 1 names the columns, and an ODCS contract
for the stream (``contracts_dir``/``tenant_id``) types them, else the sampled values do.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from dativo.contracts import load_contract, resolve_contract_path
from dativo.errors import ConfigError
from dativo.google_auth import GoogleSession, auth_properties
from dativo.names import name_problem, table_name
from dativo.resilience import ResiliencePolicy
from dativo.resilience_settings import ResilienceSettings, settings_properties
from dativo.tap_runtime import ObservedTap
from tap_dativo_google_sheets.cells import (
    INFERRED_SCHEMAS,
    Bounds,
    column_letter,
    contract_schema,
    infer_kind,
    parse_range,
    quote_title,
    unique_headers,
)
from tap_dativo_google_sheets.streams import MODIFIED, ROW, SPREADSHEET, SheetSpec, SheetStream

SHEETS_ENDPOINT = "https://sheets.googleapis.com"
DRIVE_ENDPOINT = "https://www.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/spreadsheets.readonly",
          "https://www.googleapis.com/auth/drive.metadata.readonly")
SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
DEFAULT_RPS = 1.0  # Sheets: 60 read requests per minute per user
DEFAULT_PAGE_ROWS = 10_000
DEFAULT_INFER_ROWS = 1_000


def _config_schema() -> dict[str, Any]:
    return th.PropertiesList(
        *auth_properties(),
        th.Property("spreadsheet_ids", th.ArrayType(th.StringType),
                    description="Spreadsheets to read (the id in the URL /d/<id>/)."),
        th.Property("folder_id", th.StringType,
                    description="A Drive folder: every spreadsheet directly in it is read "
                                "(with spreadsheet_ids, both)."),
        th.Property("streams", th.ObjectType(additional_properties=th.StringType),
                    description="Stream names by '<spreadsheet_id>/<sheet title>'; default "
                                "the sheet title made a table name ('Q1 Sales' -> q1_sales)."),
        th.Property("ranges", th.ArrayType(th.ObjectType(
                        th.Property("spreadsheet_id", th.StringType, required=True),
                        th.Property("range", th.StringType, required=True,
                                    description="A1 range whose first row is the header, "
                                                "e.g. 'Q1 Sales'!B3:F (open end: to the "
                                                "sheet's last row)."),
                        th.Property("stream", th.StringType, required=True),
                        additional_properties=False)),
                    description="Streams read from a range of a sheet instead of a whole "
                                "sheet (also for spreadsheets not in spreadsheet_ids)."),
        th.Property("contracts_dir", th.StringType,
                    description="ODCS contracts, looked up as <contracts_dir>/<tenant_id>/"
                                "<domain>/<stream>.odcs.yaml; a contract types the columns."),
        th.Property("page_rows", th.IntegerType(minimum=1), default=DEFAULT_PAGE_ROWS,
                    description="Rows per values.batchGet request."),
        th.Property("infer_rows", th.IntegerType(minimum=1), default=DEFAULT_INFER_ROWS,
                    description="Rows sampled at discovery to infer the types of a sheet "
                                "without a contract."),
        th.Property("api_endpoint", th.StringType, default=SHEETS_ENDPOINT,
                    description="Sheets API base URL (tests point it at a local server)."),
        th.Property("drive_api_endpoint", th.StringType, default=DRIVE_ENDPOINT,
                    description="Drive API base URL (modifiedTime, folder listing)."),
        *settings_properties(requests_per_second=DEFAULT_RPS),
    ).to_dict()


class TapDativoGoogleSheets(ObservedTap, Tap):
    """Sheets of spreadsheets as streams, re-read when the spreadsheet changed."""

    name = "tap-dativo-google-sheets"
    config_jsonschema = _config_schema()
    dynamic_catalog = True  # discovery reads the spreadsheets: it needs the config

    @cached_property
    def policy(self) -> ResiliencePolicy:
        """One policy (rate limit, breaker) for every request of the run."""
        return ResiliencePolicy(ResilienceSettings.from_config(
            self.config, requests_per_second=DEFAULT_RPS), metric_labels=self.run_metrics.labels)

    @cached_property
    def sheets(self) -> GoogleSession:
        return GoogleSession(self.config, scopes=SCOPES, policy=self.policy,
                             api_endpoint=self.config.get("api_endpoint") or SHEETS_ENDPOINT)

    @cached_property
    def drive(self) -> GoogleSession:
        """The same credentials (one token); its own base URL."""
        return GoogleSession(self.config, scopes=SCOPES, policy=self.policy,
                             api_endpoint=self.config.get("drive_api_endpoint")
                             or DRIVE_ENDPOINT, credentials=self.sheets.credentials)

    def _spreadsheet_ids(self) -> list[str]:
        ids = list(self.config.get("spreadsheet_ids") or [])
        folder = self.config.get("folder_id")
        if not ids and not folder and not self.config.get("ranges"):
            raise ConfigError("set spreadsheet_ids (ids from the spreadsheets' URLs), "
                              "folder_id (a Drive folder of spreadsheets) or ranges")
        if folder:
            if "'" in folder or "\\" in folder:
                raise ConfigError(f"folder_id={folder!r}: not a Drive id (the part after "
                                  "/folders/ in the folder's URL)")
            token: str | None = None
            query = (f"'{folder}' in parents and mimeType = '{SPREADSHEET_MIME}' "
                     "and trashed = false")
            while True:
                params = {"q": query, "pageSize": "1000", "supportsAllDrives": "true",
                          "includeItemsFromAllDrives": "true",
                          "fields": "nextPageToken,files(id,name)"}
                if token:
                    params["pageToken"] = token
                page = self.drive.get_json("/drive/v3/files", params)
                ids += [f["id"] for f in page.get("files") or [] if f["id"] not in ids]
                token = page.get("nextPageToken")
                if not token:
                    break
            if not ids:
                self.logger.warning("folder %s holds no spreadsheet: nothing to read", folder)
        return ids

    def discover_streams(self) -> list[Stream]:
        """A stream per sheet with a header row and per configured range; names unique."""
        overrides: dict[str, str] = dict(self.config.get("streams") or {})
        streams: list[Stream] = []
        origin: dict[str, str] = {}

        def add(name: str, key: str, where: str, spec: SheetSpec) -> None:
            problem = name_problem(name)
            if problem:
                raise ConfigError(f"{where}: {problem}")
            if name in origin:
                raise ConfigError(
                    f"{origin[name]!r} and {key!r} would both be stream {name!r}; name one "
                    f"in the streams setting (a sheet: streams: {{\"<spreadsheet_id>/<sheet "
                    f"title>\": \"{name}_2\"}}) or in ranges[].stream")
            origin[name] = key
            streams.append(self._stream(name, spec))

        seen_keys: set[str] = set()
        for spreadsheet_id in self._spreadsheet_ids():
            for spec in self._sample(spreadsheet_id, None):
                key = f"{spreadsheet_id}/{spec.title}"
                seen_keys.add(key)
                add(overrides.get(key) or table_name(spec.title), key, f"streams.{key}", spec)
        unknown = sorted(set(overrides) - seen_keys)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(seen_keys), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"streams: no sheet {unknown[0]!r}{hint}; keys are "
                              "'<spreadsheet_id>/<sheet title>' of the sheets read")
        for index, entry in enumerate(self.config.get("ranges") or []):
            where = f"ranges[{index}]"
            try:
                bounds = parse_range(entry["range"])
            except ValueError as exc:
                raise ConfigError(f"{where}.range={entry['range']!r}: {exc}") from None
            for spec in self._sample(entry["spreadsheet_id"], bounds, where=where):
                add(entry["stream"], where, f"{where}.stream", spec)
        return streams

    def _sample(self, spreadsheet_id: str, bounds: Bounds | None, *, where: str = ""
                ) -> list[SheetSpec]:
        """Header and column kinds of every sheet (``bounds`` None) or of one range, from
        one spreadsheets.get of the first ``infer_rows`` rows with their formats."""
        book = self.sheets.get_json(f"/v4/spreadsheets/{spreadsheet_id}",
                                    {"includeGridData": "false",
                                     "fields": "properties(title,timeZone),sheets.properties"})
        grids = {s["properties"]["title"]: s["properties"].get("gridProperties") or {}
                 for s in book.get("sheets") or []
                 if s["properties"].get("sheetType", "GRID") == "GRID"}
        sample = int(self.config.get("infer_rows") or DEFAULT_INFER_ROWS)
        if bounds is None:
            wanted = [(title, 1, 0, None, None) for title in grids]
        else:
            if bounds[0] not in grids:
                close = difflib.get_close_matches(bounds[0], list(grids), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{where}.range: spreadsheet {spreadsheet_id} has no sheet "
                                  f"{bounds[0]!r}{hint}")
            wanted = [bounds]
        if not wanted:
            return []
        ranges = {}
        for title, header_row, first_col, last_row, last_col in wanted:
            end_col = last_col if last_col is not None else max(
                first_col, int(grids[title].get("columnCount") or 26) - 1)
            end_row = header_row + sample if last_row is None else min(last_row,
                                                                       header_row + sample)
            ranges[title] = (f"{quote_title(title)}!{column_letter(first_col)}{header_row}:"
                             f"{column_letter(end_col)}{end_row}")
        grid = self.sheets.get_json(f"/v4/spreadsheets/{spreadsheet_id}", {
            "includeGridData": "true", "ranges": list(ranges.values()),
            "fields": "sheets(properties.title,data.rowData.values(effectiveValue,"
                      "effectiveFormat.numberFormat))"})
        sampled = {s["properties"]["title"]: s for s in grid.get("sheets") or []}
        props = book.get("properties") or {}
        zone = str(props.get("timeZone") or "UTC")
        try:
            ZoneInfo(zone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ConfigError(f"spreadsheet {spreadsheet_id}: its time zone {zone!r} is not "
                              "in this system's tz database, so its date-times cannot be "
                              "read; install tzdata (pip install tzdata)") from None
        specs = []
        for title, header_row, first_col, last_row, last_col in wanted:
            sheet = sampled.get(title) or {}
            rows = [r.get("values") or [] for r in
                    ((sheet.get("data") or [{}])[0].get("rowData") or [])]
            header = [_cell_value(c) for c in rows[0]] if rows else []
            while header and header[-1] in (None, "") and last_col is None:
                header.pop()
            if last_col is not None:
                header = [*header, *[None] * (last_col - first_col + 1 - len(header))]
            if not header:
                self.logger.warning("sheet %r of %s has no header row (%s is empty): "
                                    "skipped", title, spreadsheet_id, ranges[title])
                continue
            columns, warnings = unique_headers(header, first_column=first_col)
            for warning in warnings:
                self.logger.warning("sheet %r of %s: %s", title, spreadsheet_id, warning)
            kinds = [infer_kind(row[i] for row in rows[1:] if i < len(row))
                     for i in range(len(columns))]
            specs.append(SheetSpec(spreadsheet_id, str(props.get("title", "")), title,
                                   tuple(columns), tuple(kinds),
                                   zone, None, header_row,
                                   first_col, last_row))
        return specs

    def _stream(self, name: str, spec: SheetSpec) -> SheetStream:
        """The stream with its schema: the contract's types, else the inferred ones."""
        contract = self._contract(name)
        properties: dict[str, Any] = {}
        kinds = list(spec.kinds)
        columns = list(spec.columns)
        if contract is not None:
            fields = {f.name: f for f in contract.fields}
            for index, column in enumerate(columns):
                match = column if column in fields else _table_name_or_none(column)
                if match in fields and match not in columns:
                    columns[index] = match  # header 'Order ID' -> contract column order_id
                kinds[index] = fields[columns[index]].kind if columns[index] in fields \
                    else "string"
            absent = [name for name in fields if name not in columns]
            if absent:
                self.logger.warning(
                    "stream %s: contract %s has column(s) %s that sheet %r has no header for; "
                    "they are sent empty", name, contract.source, ", ".join(absent), spec.title)
            properties = {f.name: contract_schema(f) for f in contract.fields}
        for column, kind in zip(columns, kinds, strict=True):
            properties.setdefault(column, dict(INFERRED_SCHEMAS.get(kind,
                                                                    INFERRED_SCHEMAS["string"])))
        properties[ROW] = {"type": ["integer"]}
        properties[MODIFIED] = {"type": ["string"], "format": "date-time"}
        properties[SPREADSHEET] = {"type": ["string"]}
        spec = replace(spec, columns=tuple(columns), kinds=tuple(kinds),
                       contract=contract.source if contract else None)
        return SheetStream(self, name, spec, {"type": "object", "properties": properties})

    def _contract(self, stream: str) -> Any:
        contracts_dir = self.config.get("contracts_dir")
        if not contracts_dir:
            return None
        tenant = self.config.get("tenant_id")
        if not tenant:
            raise ConfigError("tenant_id: required when contracts_dir is set (contracts are "
                              "looked up under <contracts_dir>/<tenant_id>/<domain>/)")
        if not Path(contracts_dir).is_dir():
            raise ConfigError(f"contracts_dir: {contracts_dir} is not a directory")
        path = resolve_contract_path(stream, tenant_id=tenant, contracts_dir=Path(contracts_dir),
                                     stream_contracts={})
        return load_contract(path) if path is not None else None

    def sync_all(self) -> None:
        """Sync, then log the request and retry counters (also when the run fails)."""
        try:
            super().sync_all()
        finally:
            self.logger.info("Google Sheets requests: %s", self.policy.summary())


def _table_name_or_none(header: str) -> str | None:
    """The header as a table/column name ('Order ID' -> order_id), None if it has none."""
    try:
        return table_name(header)
    except ConfigError:
        return None


def _cell_value(cell: dict[str, Any]) -> Any:
    value = cell.get("effectiveValue") or {}
    for key in ("stringValue", "numberValue", "boolValue"):
        if key in value:
            return value[key]
    return None


if __name__ == "__main__":
    TapDativoGoogleSheets.cli()
