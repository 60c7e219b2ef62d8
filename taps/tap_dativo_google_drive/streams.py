"""The ``files`` (metadata) and ``documents`` (metadata and content) streams.

Both read the same selection the same way. A first run (no ``page_token`` in the
stream's state) takes ``changes.getStartPageToken`` first and then lists every selected
file with ``files.list``, so a change made during the listing is read again next time
rather than lost. Later runs read ``changes.list`` from the state's ``page_token`` and
store Drive's ``newStartPageToken`` when the stream ends. A trashed file comes as its
row with ``_sdc_deleted_at`` set; a removed one (deleted for good, or no longer shared)
as a row of its id and ``_sdc_deleted_at`` only, since Drive no longer says what it was
(so a removed file that was never selected lands as such a row too). A file moved out of
the selected folders, or renamed out of ``name_globs``, is not seen as a delete: the feed
no longer says it was selected; its last row stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_dativo_google_drive.drive import Drive, Selection

_STR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
FILE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string"},
    "name": _STR,
    "mimeType": _STR,
    "parents": {"type": ["array", "null"], "items": {"type": "string"}},
    "owners": {"type": ["array", "null"], "items": {"type": "object", "properties": {
        "displayName": _STR, "emailAddress": _STR}}},
    "md5Checksum": _STR,
    "size": {"type": ["integer", "null"]},
    "modifiedTime": _TIME,
    "trashed": {"type": ["boolean", "null"]},
    "webViewLink": _STR,
    "webContentLink": _STR,
    "_sdc_deleted_at": _TIME,
}


class DriveStream(Stream):
    """One row per selected file, from the full listing or the change feed."""

    primary_keys: ClassVar[list[str]] = ["id"]

    @property
    def drive(self) -> Drive:
        return self._tap.drive  # type: ignore[attr-defined, no-any-return]

    @property
    def selection(self) -> Selection:
        return self._tap.selection  # type: ignore[attr-defined, no-any-return]

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        state = self.stream_state
        token = state.get("page_token")
        if token is None:
            next_token = self.drive.start_page_token()
            for meta in self.drive.current_files(self.selection):
                yield self.row(meta, None)
        else:
            changes, next_token = self.drive.changes(str(token))
            for change in changes:
                if change.get("removed") or not change.get("file"):
                    yield self.tombstone(change)
                    continue
                meta = change["file"]
                if self.selection.accepts(meta):
                    deleted = (change.get("time") or meta.get("modifiedTime")
                               if meta.get("trashed") else None)
                    yield self.row(meta, deleted)
        state["page_token"] = next_token

    def tombstone(self, change: dict[str, Any]) -> dict[str, Any]:
        return {**dict.fromkeys(self.schema["properties"]), "id": change["fileId"],
                "_sdc_deleted_at": change.get("time")}

    def metadata_row(self, meta: dict[str, Any], deleted_at: str | None) -> dict[str, Any]:
        size = meta.get("size")
        return {"id": meta["id"], "name": meta.get("name"), "mimeType": meta.get("mimeType"),
                "parents": meta.get("parents"),
                "owners": [{"displayName": o.get("displayName"),
                            "emailAddress": o.get("emailAddress")}
                           for o in meta.get("owners") or []],
                "md5Checksum": meta.get("md5Checksum"),
                "size": None if size is None else int(size),
                "modifiedTime": meta.get("modifiedTime"), "trashed": meta.get("trashed"),
                "webViewLink": meta.get("webViewLink"),
                "webContentLink": meta.get("webContentLink"), "_sdc_deleted_at": deleted_at}

    def row(self, meta: dict[str, Any], deleted_at: str | None) -> dict[str, Any]:
        return self.metadata_row(meta, deleted_at)


class FilesStream(DriveStream):
    """File metadata: id, name, type, folders, owners, checksum, size, times, links."""

    name = "files"
    schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": FILE_PROPERTIES}


class DocumentsStream(DriveStream):
    """Metadata plus content: Google Docs exported as Markdown (else plain text), text,
    Markdown and CSV files as they are; PDFs and other binaries with content null.

    ``content`` is at most ``max_content_bytes`` of the body (then ``content_truncated``
    is true); ``content_sha256`` and ``content_bytes`` are those of the whole body.
    """

    name = "documents"
    schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {
        **FILE_PROPERTIES,
        "content": _STR,
        "content_mime_type": _STR,
        "content_sha256": _STR,
        "content_bytes": {"type": ["integer", "null"]},
        "content_truncated": {"type": ["boolean", "null"]},
    }}

    @property
    def max_content_bytes(self) -> int:
        return int(self._tap.max_content_bytes)  # type: ignore[attr-defined]

    def row(self, meta: dict[str, Any], deleted_at: str | None) -> dict[str, Any]:
        row = self.metadata_row(meta, deleted_at)
        content = None if deleted_at else self.drive.content(meta, self.max_content_bytes)
        if content is None:
            return {**row, "content": None, "content_mime_type": None,
                    "content_sha256": None, "content_bytes": None, "content_truncated": None}
        if content.truncated:
            self.logger.warning(
                "file %s (%s): %d bytes, content keeps the first %d (max_content_bytes); "
                "content_sha256 is of the whole file", meta["id"], meta.get("name"),
                content.size, self.max_content_bytes)
        return {**row, "content": content.text, "content_mime_type": content.mime_type,
                "content_sha256": content.sha256, "content_bytes": content.size,
                "content_truncated": content.truncated}
