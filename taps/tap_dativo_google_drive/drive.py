"""Drive v3 reads: the selection (folders walked recursively, filters), files.list, the
change feed, and downloads streamed into a bounded buffer.

Every request goes through :class:`dativo.google_auth.GoogleSession` (token refresh once
on 401, the tap's retry policy for 429, 5xx and Google's rate-limit reasons).
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import logging
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from dativo.errors import ConfigError
from dativo.google_auth import GoogleSession
from dativo.resilience import FatalApiError, TransientFailure

logger = logging.getLogger(__name__)

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
FILE_FIELDS = ("id,name,mimeType,parents,owners(displayName,emailAddress),md5Checksum,size,"
               "modifiedTime,trashed,webViewLink,webContentLink")
LIST_FIELDS = f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"
CHANGE_FIELDS = (f"nextPageToken,newStartPageToken,changes(changeType,removed,fileId,time,"
                 f"file({FILE_FIELDS}))")
PAGE_SIZE = 1000  # files.list and changes.list maximum
PARENTS_PER_QUERY = 20  # "'a' in parents or ..." terms per files.list query
CHUNK_BYTES = 64 * 1024  # one read of a download
SPOOL_IN_MEMORY = 1024 * 1024  # the download buffer moves to a temp file past this
_ID = re.compile(r"[A-Za-z0-9_-]+")
SHARED = {"supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}


@dataclass(frozen=True)
class Content:
    """A downloaded or exported body: text (the first ``max_content_bytes`` bytes,
    decoded as UTF-8 with bad bytes replaced), the SHA-256 and size of the whole body."""

    text: str
    mime_type: str
    sha256: str
    size: int
    truncated: bool


@dataclass(frozen=True)
class Selection:
    """Which files the tap reads. ``folders`` is None (the whole Drive) or the configured
    folders and every folder under them."""

    folders: frozenset[str] | None
    mime_types: frozenset[str]
    name_globs: tuple[str, ...]
    max_file_size: int | None

    def accepts(self, meta: Mapping[str, Any]) -> bool:
        """Whether a file (trashed or not) is in the selection; folders never are."""
        if meta.get("mimeType") == FOLDER:
            return False
        if self.folders is not None and not set(meta.get("parents") or []) & self.folders:
            return False
        if self.mime_types and meta.get("mimeType") not in self.mime_types:
            return False
        name = str(meta.get("name") or "")
        if self.name_globs and not any(fnmatch.fnmatchcase(name, g) for g in self.name_globs):
            return False
        size = meta.get("size")
        return self.max_file_size is None or size is None or int(size) <= self.max_file_size


def _quoted_ids(key: str, values: Any) -> list[str]:
    ids = [str(v) for v in values or []]
    bad = [v for v in ids if not _ID.fullmatch(v)]
    if bad:
        raise ConfigError(f"{key}: {', '.join(map(repr, bad))} is not a Drive id (letters, "
                          "digits, - and _; the part after /folders/ in the folder's URL)")
    return ids


class Drive:
    """The Drive v3 calls the streams make."""

    def __init__(self, session: GoogleSession) -> None:
        self.session = session

    def _pages(self, path: str, params: dict[str, Any], items: str) -> Iterator[Any]:
        token: str | None = None
        while True:
            body = self.session.get_json(path, {**params, "pageToken": token}
                                         if token else params)
            if not isinstance(body.get(items), list):
                raise FatalApiError(f"Drive answered GET {path} without its '{items}' list; "
                                    "check that api_endpoint is Google's "
                                    "(https://www.googleapis.com)", path=path)
            yield body
            token = body.get("nextPageToken")
            if not token:
                return

    def list_files(self, q: str) -> Iterator[dict[str, Any]]:
        """files.list over every page."""
        params = {"q": q, "pageSize": PAGE_SIZE, "fields": LIST_FIELDS, **SHARED}
        for body in self._pages("/drive/v3/files", params, "files"):
            yield from body["files"]

    def selection(self, config: Mapping[str, Any]) -> Selection:
        """The filters from the settings, the folders walked down to every subfolder."""
        roots = _quoted_ids("folder_ids", config.get("folder_ids"))
        folders: set[str] | None = None
        if roots:
            folders = set(roots)
            frontier = list(roots)
            while frontier:
                batch, frontier = frontier[:PARENTS_PER_QUERY], frontier[PARENTS_PER_QUERY:]
                q = f"({_in_parents(batch)}) and mimeType = '{FOLDER}' and trashed = false"
                for sub in self.list_files(q):
                    if sub["id"] not in folders:
                        folders.add(sub["id"])
                        frontier.append(sub["id"])
        max_size = config.get("max_file_size_bytes")
        if max_size is not None and int(max_size) < 0:
            raise ConfigError(f"max_file_size_bytes={max_size}: must be 0 or more")
        return Selection(frozenset(folders) if folders is not None else None,
                         frozenset(map(str, config.get("mime_types") or [])),
                         tuple(map(str, config.get("name_globs") or [])),
                         None if max_size is None else int(max_size))

    def current_files(self, selection: Selection) -> Iterator[dict[str, Any]]:
        """Every file in the selection now (not trashed), by files.list."""
        mime = ""
        if selection.mime_types:
            mime = " and (" + " or ".join(f"mimeType = '{m}'" for m in
                                          sorted(selection.mime_types)) + ")"
        if selection.folders is None:
            queries = [f"trashed = false and mimeType != '{FOLDER}'{mime}"]
        else:
            parents = sorted(selection.folders)
            queries = [f"({_in_parents(parents[i:i + PARENTS_PER_QUERY])}) and "
                       f"trashed = false{mime}"
                       for i in range(0, len(parents), PARENTS_PER_QUERY)]
        seen: set[str] = set()
        for q in queries:
            for meta in self.list_files(q):
                if meta["id"] not in seen and selection.accepts(meta):
                    seen.add(meta["id"])  # a file in two selected folders comes once
                    yield meta

    def start_page_token(self) -> str:
        body = self.session.get_json("/drive/v3/changes/startPageToken", SHARED)
        token = body.get("startPageToken")
        if not token:
            raise FatalApiError("Drive answered changes/startPageToken without a "
                                "startPageToken; check api_endpoint",
                                path="/drive/v3/changes/startPageToken")
        return str(token)

    def changes(self, page_token: str) -> tuple[list[dict[str, Any]], str]:
        """The file changes since ``page_token``, the last one per file, in order; and the
        token of the next run (``newStartPageToken``)."""
        params: dict[str, Any] = {"pageSize": PAGE_SIZE, "includeRemoved": "true",
                                  "fields": CHANGE_FIELDS, "spaces": "drive",
                                  "supportsAllDrives": "true",
                                  "includeItemsFromAllDrives": "true"}
        latest: dict[str, dict[str, Any]] = {}
        token = page_token
        while True:
            body = self.session.get_json("/drive/v3/changes", {**params, "pageToken": token})
            if not isinstance(body.get("changes"), list):
                raise FatalApiError("Drive answered GET /drive/v3/changes without its "
                                    "'changes' list; check api_endpoint",
                                    path="/drive/v3/changes")
            for change in body["changes"]:
                if change.get("changeType", "file") == "file" and change.get("fileId"):
                    latest.pop(change["fileId"], None)  # keep the order of the last change
                    latest[change["fileId"]] = change
            if body.get("newStartPageToken"):
                return list(latest.values()), str(body["newStartPageToken"])
            token = body.get("nextPageToken")
            if not token:
                raise FatalApiError("Drive's change list ended without a newStartPageToken; "
                                    "check api_endpoint", path="/drive/v3/changes")

    def content(self, meta: Mapping[str, Any], max_bytes: int) -> Content | None:
        """The body of a Doc (exported) or a text file (downloaded); None for the rest,
        and (with a warning naming the file) for one Drive will not give: gone since the
        listing (404) or not downloadable (403, e.g. a Doc too large to export)."""
        try:
            return self._content(meta, max_bytes)
        except FatalApiError as exc:
            if exc.status not in (403, 404):
                raise
            logger.warning("file %s (%s): no content, Drive answered HTTP %s; it lands with "
                           "content null", meta["id"], meta.get("name"), exc.status)
            return None

    def _content(self, meta: Mapping[str, Any], max_bytes: int) -> Content | None:
        mime = str(meta.get("mimeType"))
        path = f"/drive/v3/files/{meta['id']}"
        if mime == DOC:
            try:
                return self.download(f"{path}/export", {"mimeType": "text/markdown"},
                                     "text/markdown", max_bytes)
            except FatalApiError as exc:
                if exc.status not in (400, 403):
                    raise
                logger.info("file %s: no Markdown export (HTTP %s), exporting text/plain",
                            meta["id"], exc.status)
            return self.download(f"{path}/export", {"mimeType": "text/plain"}, "text/plain",
                                 max_bytes)
        if is_text(mime):
            return self.download(path, {"alt": "media", "supportsAllDrives": "true"}, mime,
                                 max_bytes)
        return None

    def download(self, path: str, params: dict[str, Any], mime_type: str, max_bytes: int
                 ) -> Content:
        """Stream a body in chunks: hash all of it, keep its first ``max_bytes`` bytes in
        a spooled buffer (memory up to 1 MiB, then a temp file). A body cut off
        mid-stream is retried whole under the policy."""

        def once() -> Content:
            response = self.session.get_stream(path, params)
            digest, size = hashlib.sha256(), 0
            with response, tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as kept:
                try:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        digest.update(chunk)
                        size += len(chunk)
                        room = max_bytes - kept.tell()
                        if room > 0:
                            kept.write(chunk[:room])
                except requests.RequestException as exc:
                    raise TransientFailure("cut-short", f"GET {path}: {type(exc).__name__}"
                                           ) from exc
                kept.seek(0)
                data = kept.read()
            truncated = size > max_bytes
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            # A cut in the middle of a character drops that character's bytes.
            text = decoder.decode(data, final=not truncated)
            return Content(text, mime_type, digest.hexdigest(), size, truncated)

        # The file id stays out of the metric label (one label per file otherwise).
        what = "download " + re.sub(r"/files/[^/]+", "/files/:id", path)
        return self.session.policy.call(once, what=what)


def is_text(mime_type: str) -> bool:
    """Downloaded as they are: text (plain, Markdown, CSV, ...) and JSON."""
    return mime_type.startswith("text/") or mime_type == "application/json"


def _in_parents(ids: list[str]) -> str:
    return " or ".join(f"'{i}' in parents" for i in ids)
