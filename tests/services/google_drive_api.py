"""An in-memory Google Drive speaking the Drive v3 JSON protocol the Drive tap uses.

Extends :class:`~tests.services.google_api.GoogleApi` (token endpoint, bearer checks,
``files.list``/``files.get``) with what the Drive tap reads besides: ``GET
files/{id}?alt=media`` (a blob's bytes), ``GET files/{id}/export?mimeType=`` (a Google
Doc as text/markdown or text/plain; other formats answer 400 as Drive does), ``GET
changes/startPageToken`` and ``GET changes`` (``pageToken``, ``pageSize``,
``includeRemoved``; ``nextPageToken``, or ``newStartPageToken`` on the last page). The
``q`` of ``files.list`` is read with ``and``, ``or`` and parentheses over the base's
clauses, as Drive's query language allows.

Every write (:meth:`DriveApi.add`, :meth:`edit`, :meth:`trash`, :meth:`delete`) appends
a change, so the change feed replays exactly what happened since a page token. Blobs
carry ``size``, ``md5Checksum`` and ``webContentLink``; Google Docs do not, as in Drive.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from tests.services.google_api import GoogleApi, google_error
from tests.services.http_fixture import Request, Response, json_response

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
EXPORTS = {DOC: {"text/markdown", "text/plain", "application/pdf"}}
PAGE_MAX = 1000
OWNER = {"kind": "drive#user", "displayName": "Ada Owner", "emailAddress": "ada@example.com",
         "permissionId": "01234"}


@dataclass
class DriveApi(GoogleApi):
    """In-memory Drive. ``no_markdown`` makes a Doc's export refuse text/markdown with
    400, as Drive did before it offered Markdown."""

    contents: dict[str, bytes] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    no_markdown: bool = False

    # -- data --------------------------------------------------------------------------
    def _record(self, file_id: str, *, removed: bool = False, time: str | None = None
                ) -> None:
        self.changes.append({"fileId": file_id, "removed": removed,
                             "time": time or self.files[file_id]["modifiedTime"]})

    def _blob_fields(self, meta: dict[str, Any]) -> None:
        if meta["mimeType"].startswith("application/vnd.google-apps."):
            return  # Docs editors files have no bytes of their own
        data = self.contents[meta["id"]]
        meta.update(size=str(len(data)), md5Checksum=hashlib.md5(data).hexdigest(),
                    webContentLink=f"https://drive.google.com/uc?id={meta['id']}"
                                   "&export=download")

    def add(self, name: str, mime_type: str, content: bytes | str = b"",
            parent: str = "root") -> dict[str, Any]:
        with self.lock:
            meta = self.add_file(name, mime_type, parents=[parent], owners=[OWNER])
            meta["webViewLink"] = f"https://drive.google.com/file/d/{meta['id']}/view"
            self.contents[meta["id"]] = content.encode() if isinstance(content, str) else content
            self._blob_fields(meta)
            self._record(meta["id"])
            return meta

    def folder(self, name: str, parent: str = "root") -> dict[str, Any]:
        return self.add(name, FOLDER, parent=parent)

    def edit(self, file_id: str, content: bytes | str) -> dict[str, Any]:
        with self.lock:
            self.contents[file_id] = content.encode() if isinstance(content, str) else content
            meta = self.touch(file_id)
            self._blob_fields(meta)
            self._record(file_id)
            return meta

    def trash(self, file_id: str) -> dict[str, Any]:
        with self.lock:
            meta = self.touch(file_id, trashed=True)
            self._record(file_id)
            return meta

    def delete(self, file_id: str) -> None:
        """Permanently: the change feed says ``removed`` and carries no file."""
        with self.lock:
            now = self.tick()
            del self.files[file_id]
            del self.contents[file_id]
            self._record(file_id, removed=True, time=now)

    # -- HTTP --------------------------------------------------------------------------
    def drive_route(self, request: Request) -> Response:
        path = request.path
        if path == "/drive/v3/changes/startPageToken":
            with self.lock:
                token = str(len(self.changes) + 1)
            return json_response(200, {"kind": "drive#startPageToken", "startPageToken": token})
        if path == "/drive/v3/changes":
            return self._changes(request)
        if match := re.fullmatch(r"/drive/v3/files/([^/]+)/export", path):
            return self._export(match[1], request.one("mimeType") or "")
        if (match := re.fullmatch(r"/drive/v3/files/([^/]+)", path)) and \
                request.one("alt") == "media":
            return self._media(match[1])
        return super().drive_route(request)

    def _meta(self, file_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.files.get(file_id)

    def _media(self, file_id: str) -> Response:
        meta = self._meta(file_id)
        if meta is None:
            return self.not_found(f"File not found: {file_id}.")
        if meta["mimeType"].startswith("application/vnd.google-apps."):
            return json_response(403, google_error(
                403, "Only files with binary content can be downloaded. Use Export with Docs "
                     "Editors files.", "fileNotDownloadable"))
        with self.lock:
            data = self.contents[file_id]
        return 200, {"Content-Type": meta["mimeType"]}, data

    def _export(self, file_id: str, mime_type: str) -> Response:
        meta = self._meta(file_id)
        if meta is None:
            return self.not_found(f"File not found: {file_id}.")
        allowed = set(EXPORTS.get(meta["mimeType"], set()))
        if self.no_markdown:
            allowed.discard("text/markdown")
        if mime_type not in allowed:
            return json_response(400, google_error(
                400, "The requested conversion is not supported.", "badRequest"))
        with self.lock:
            text = self.contents[file_id].decode()
        if mime_type == "text/plain":  # a plain rendering: no heading marks, no bold
            text = re.sub(r"^#+ |\*\*", "", text, flags=re.MULTILINE)
        return 200, {"Content-Type": mime_type}, text.encode()

    def _changes(self, request: Request) -> Response:
        token = request.one("pageToken") or ""
        if not token.isdigit() or int(token) < 1:
            return json_response(400, google_error(
                400, f"Invalid Value: pageToken {token!r}", "invalid"))
        size = min(PAGE_MAX, int(request.one("pageSize") or 100))
        start = int(token) - 1
        with self.lock:
            out = []
            for change in self.changes[start:start + size]:
                meta = self.files.get(change["fileId"])
                removed = change["removed"] or meta is None
                if removed and request.one("includeRemoved") == "false":
                    continue
                entry = {"kind": "drive#change", "changeType": "file", **change,
                         "removed": removed}
                if not removed:
                    entry["file"] = dict(meta)  # as it is now, as Drive sends it
                out.append(entry)
            body: dict[str, Any] = {"kind": "drive#changeList", "changes": out}
            if start + size >= len(self.changes):
                body["newStartPageToken"] = str(len(self.changes) + 1)
            else:
                body["nextPageToken"] = str(start + size + 1)
        return json_response(200, body)

    @staticmethod
    def query_filter(q: str) -> Any:
        """``and``/``or``/parentheses over :meth:`GoogleApi.query_filter`'s clauses."""
        tokens = [t for t in re.split(r"(\(|\)|\s+and\s+|\s+or\s+)", q) if t and t.strip()]
        tokens = [t.strip() for t in tokens]
        pos = 0

        def peek() -> str:
            return tokens[pos] if pos < len(tokens) else ""

        def take() -> str:
            nonlocal pos
            pos += 1
            return tokens[pos - 1]

        def term() -> Any:
            token = take() if pos < len(tokens) else ""
            if token == "(":
                inner = disjunction()
                if take() != ")":
                    raise ValueError(f"unbalanced parentheses in {q!r}")
                return inner
            if token in ("", ")", "and", "or"):
                raise ValueError(f"q {q!r}: a clause expected at {token!r}")
            return GoogleApi.query_filter(token)

        def conjunction() -> Any:
            parts = [term()]
            while peek() == "and":
                take()
                parts.append(term())
            return lambda f: all(p(f) for p in parts)

        def disjunction() -> Any:
            parts = [conjunction()]
            while peek() == "or":
                take()
                parts.append(conjunction())
            return lambda f: any(p(f) for p in parts)

        if not tokens:
            return lambda f: True
        predicate = disjunction()
        if pos != len(tokens):
            raise ValueError(f"q {q!r}: unexpected {peek()!r}")
        return predicate
