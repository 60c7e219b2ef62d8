"""tap-dativo-google-drive as a process, through google-auth and requests, against the
Drive fixture API (token endpoint, files, export, media, changes)."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.services.google_drive_api import DOC, DriveApi
from tests.services.http_fixture import Fault
from tests.services.tap_process import TapRun, discover, run_tap, select

TAP = "tap-dativo-google-drive"
FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
        "circuit_cooldown_seconds": 0.05, "requests_per_second": 0}
DOC_TEXT = "# Plan\n\nShip the **Drive** tap.\n"
CSV_TEXT = "id,name\n1,Ada\n2,Grace\n"
PDF_BYTES = b"%PDF-1.4\n\x00\xff\xfe binary\n%%EOF\n"


@pytest.fixture
def drive() -> Iterator[DriveApi]:
    api = DriveApi().start()
    yield api
    api.stop()


@pytest.fixture
def tree(drive: DriveApi) -> dict[str, dict[str, Any]]:
    """A folder (with a subfolder) holding a Doc, a CSV and a PDF, and a file outside."""
    top = drive.folder("Handbook")
    sub = drive.folder("Data", parent=top["id"])
    return {"top": top, "sub": sub,
            "doc": drive.add("Plan", DOC, DOC_TEXT, parent=top["id"]),
            "csv": drive.add("people.csv", "text/csv", CSV_TEXT, parent=sub["id"]),
            "pdf": drive.add("scan.pdf", "application/pdf", PDF_BYTES, parent=top["id"]),
            "outside": drive.add("elsewhere.txt", "text/plain", "not selected")}


def config(api: DriveApi, **extra: Any) -> dict[str, Any]:
    return {**api.oauth_config(), "api_endpoint": api.url, **FAST, **extra}


def sync(tmp_path: Path, cfg: dict[str, Any], api: DriveApi, **kwargs: Any) -> TapRun:
    run = run_tap(TAP, tmp_path, cfg, **kwargs)
    output = run.stderr + json.dumps(run.messages)
    assert api.client_secret not in output and api.refresh_token not in output
    return run


def by_id(run: TapRun, stream: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in run.records(stream)}


def test_folder_is_walked_and_docs_csv_pdf_get_their_content(
        drive: DriveApi, tree: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    run = sync(tmp_path, config(drive, folder_ids=[tree["top"]["id"]]), drive)
    assert run.returncode == 0, run.stderr
    doc, csv, pdf = (tree[k]["id"] for k in ("doc", "csv", "pdf"))
    files = by_id(run, "files")
    assert set(files) == {doc, csv, pdf}  # the subfolder's CSV too; no folders, no outsider
    assert files[pdf] | {"owners": None} == {
        "id": pdf, "name": "scan.pdf", "mimeType": "application/pdf",
        "parents": [tree["top"]["id"]], "owners": None,
        "md5Checksum": hashlib.md5(PDF_BYTES).hexdigest(), "size": len(PDF_BYTES),
        "modifiedTime": tree["pdf"]["modifiedTime"], "trashed": False,
        "webViewLink": f"https://drive.google.com/file/d/{pdf}/view",
        "webContentLink": f"https://drive.google.com/uc?id={pdf}&export=download",
        "_sdc_deleted_at": None}
    assert files[pdf]["owners"] == [{"displayName": "Ada Owner",
                                     "emailAddress": "ada@example.com"}]
    assert (files[doc]["size"], files[doc]["md5Checksum"]) == (None, None)
    docs = by_id(run, "documents")
    assert (docs[doc]["content"], docs[doc]["content_mime_type"]) == (DOC_TEXT,
                                                                      "text/markdown")
    assert docs[doc]["content_sha256"] == hashlib.sha256(DOC_TEXT.encode()).hexdigest()
    assert (docs[csv]["content"], docs[csv]["content_mime_type"], docs[csv]["content_bytes"],
            docs[csv]["content_truncated"]) == (CSV_TEXT, "text/csv", len(CSV_TEXT), False)
    assert (docs[pdf]["content"], docs[pdf]["content_sha256"]) == (None, None)
    # the PDF was never downloaded; the Doc was exported as Markdown, the CSV fetched as is
    assert not drive.served(f"/drive/v3/files/{pdf}")
    assert [r.one("mimeType") for r in drive.served(f"/drive/v3/files/{doc}/export")] == [
        "text/markdown"]
    assert [r.one("alt") for r in drive.served(f"/drive/v3/files/{csv}")] == ["media"]
    token = str(len(drive.changes) + 1)
    assert run.state["bookmarks"] == {"files": {"page_token": token},
                                      "documents": {"page_token": token}}


def test_a_doc_without_markdown_export_is_exported_as_plain_text(
        drive: DriveApi, tree: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    drive.no_markdown = True
    run = sync(tmp_path, config(drive, folder_ids=[tree["top"]["id"]]), drive)
    assert run.returncode == 0, run.stderr
    doc = by_id(run, "documents")[tree["doc"]["id"]]
    assert (doc["content"], doc["content_mime_type"]) == ("Plan\n\nShip the Drive tap.\n",
                                                          "text/plain")


def test_change_feed_run_picks_up_an_edit_a_trash_and_a_delete(
        drive: DriveApi, tree: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    cfg = config(drive, folder_ids=[tree["top"]["id"]])
    first = sync(tmp_path, cfg, drive)
    assert first.returncode == 0, first.stderr
    token = first.state["bookmarks"]["documents"]["page_token"]
    edited = drive.edit(tree["csv"]["id"], "id,name\n1,Ada Lovelace\n")
    trashed = drive.trash(tree["doc"]["id"])
    drive.delete(tree["pdf"]["id"])
    drive.add("later.txt", "text/plain", "outside the folder")  # not selected
    new = drive.add("notes.md", "text/markdown", "# New\n", parent=tree["sub"]["id"])
    drive.requests.clear()
    second = sync(tmp_path, cfg, drive, state=first.state)
    assert second.returncode == 0, second.stderr
    # each stream read the feed from the state's token, and listed no files
    assert [r.one("pageToken") for r in drive.served("/drive/v3/changes")] == [token, token]
    assert not [r for r in drive.served("/drive/v3/files") if r.path == "/drive/v3/files"
                and "trashed = false" in (r.one("q") or "") and "folder" not in r.one("q")]
    docs = by_id(second, "documents")
    assert list(docs) == [tree["csv"]["id"], tree["doc"]["id"], tree["pdf"]["id"], new["id"]]
    csv = docs[tree["csv"]["id"]]
    assert (csv["content"], csv["modifiedTime"], csv["_sdc_deleted_at"]) == (
        "id,name\n1,Ada Lovelace\n", edited["modifiedTime"], None)
    doc = docs[tree["doc"]["id"]]
    assert (doc["trashed"], doc["_sdc_deleted_at"], doc["content"]) == (
        True, trashed["modifiedTime"], None)
    pdf = docs[tree["pdf"]["id"]]
    assert pdf["_sdc_deleted_at"] is not None and pdf["name"] is None  # a tombstone
    assert docs[new["id"]]["content"] == "# New\n"
    assert list(by_id(second, "files")) == list(docs)
    assert second.state["bookmarks"]["files"]["page_token"] == str(len(drive.changes) + 1)
    third = sync(tmp_path, cfg, drive, state=second.state)
    assert third.returncode == 0 and third.records("documents") == []


def test_filters_mime_types_name_globs_and_max_file_size(
        drive: DriveApi, tree: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    big = drive.add("big.csv", "text/csv", "x" * 5000, parent=tree["top"]["id"])
    run = sync(tmp_path, config(drive, folder_ids=[tree["top"]["id"]],
                                mime_types=["text/csv", DOC], name_globs=["*.csv"],
                                max_file_size_bytes=1000), drive)
    assert run.returncode == 0, run.stderr
    assert [r["id"] for r in run.records("documents")] == [tree["csv"]["id"]]
    assert big["id"] not in by_id(run, "files")
    [listing] = {r.one("q") for r in drive.served("/drive/v3/files")
                 if r.path == "/drive/v3/files" and "folder" not in (r.one("q") or "")}
    assert f"(mimeType = '{DOC}' or mimeType = 'text/csv')" in listing


def test_quota_storm_and_an_expired_token_recover(
        drive: DriveApi, tree: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    rate_limited = {"error": {"code": 403, "message": "User rate limit exceeded.",
                              "status": "PERMISSION_DENIED",
                              "errors": [{"reason": "userRateLimitExceeded"}]}}
    drive.inject(Fault("status", times=3, path="/drive/v3/files", status=429,
                       retry_after=0.01))
    drive.inject(Fault("status", times=2, path="/drive/v3/changes/startPageToken",
                       status=503))
    drive.inject(Fault("status", times=2, path=f"/drive/v3/files/{tree['doc']['id']}/export",
                       status=403, body=rate_limited))
    drive.inject(Fault("status", times=1, path=f"/drive/v3/files/{tree['csv']['id']}",
                       status=401))
    drive.inject(Fault("truncated", times=1, path=f"/drive/v3/files/{tree['csv']['id']}"))
    run = sync(tmp_path, config(drive, folder_ids=[tree["top"]["id"]]), drive)
    assert run.returncode == 0, run.stderr
    docs = by_id(run, "documents")
    assert docs[tree["doc"]["id"]]["content"] == DOC_TEXT
    assert docs[tree["csv"]["id"]]["content"] == CSV_TEXT
    assert len(drive.served(faulted=True)) == 9
    assert drive.token_grants == ["refresh_token", "refresh_token"]  # refreshed on the 401
    summary = run.stderr.split("Google Drive requests: ", 1)[1].splitlines()[0]
    # the download cut short mid-body was fetched again whole
    assert ast.literal_eval(summary)["retries"] == {"429": 5, "503": 2, "cut-short": 1}


def test_listing_and_change_feed_follow_page_tokens(drive: DriveApi, tmp_path: Path
                                                    ) -> None:
    folder = drive.folder("many")
    made = [drive.add(f"n{n:04d}.txt", "text/plain", "x", parent=folder["id"])["id"]
            for n in range(1005)]
    cfg = config(drive, folder_ids=[folder["id"]])
    catalog = select(discover(TAP, tmp_path, cfg), {"files"})
    first = sync(tmp_path, cfg, drive, catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert sorted(first.ids("files")) == made
    listing = [r for r in drive.served("/drive/v3/files") if r.path == "/drive/v3/files"
               and "folder" not in (r.one("q") or "")]
    assert [r.one("pageToken") for r in listing] == [None, "1000"]
    for file_id in made[:1003]:
        drive.edit(file_id, "y")
    second = sync(tmp_path, cfg, drive, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    assert second.ids("files") == made[:1003]
    token = int(first.state["bookmarks"]["files"]["page_token"])
    assert [r.one("pageToken") for r in drive.served("/drive/v3/changes")
            if r.path == "/drive/v3/changes"] == [str(token), str(token + 1000)]


def test_bad_utf8_is_replaced_and_a_vanished_file_lands_without_content(
        drive: DriveApi, tmp_path: Path) -> None:
    folder = drive.folder("mixed")
    latin = drive.add("latin1.txt", "text/plain", b"caf\xe9 ok", parent=folder["id"])
    gone = drive.add("gone.md", "text/markdown", "# soon deleted", parent=folder["id"])
    drive.inject(Fault("status", path=f"/drive/v3/files/{gone['id']}", status=404))
    run = sync(tmp_path, config(drive, folder_ids=[folder["id"]]), drive)
    assert run.returncode == 0, run.stderr
    docs = by_id(run, "documents")
    assert docs[latin["id"]]["content"] == "caf\ufffd ok"
    assert docs[latin["id"]]["content_sha256"] == hashlib.sha256(b"caf\xe9 ok").hexdigest()
    assert (docs[gone["id"]]["name"], docs[gone["id"]]["content"]) == ("gone.md", None)
    assert f"file {gone['id']} (gone.md): no content, Drive answered HTTP 404" in run.stderr


def test_revoked_refresh_token_is_one_line_exit_2_without_secrets(
        drive: DriveApi, tree: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    drive.revoke()
    run = sync(tmp_path, config(drive), drive)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert "invalid_grant" in errors[0] and "refresh_token" in errors[0]
    assert run.records("files") == []


def test_unknown_extractor_and_bad_folder_id_are_refused(drive: DriveApi,
                                                         tmp_path: Path) -> None:
    run = sync(tmp_path, config(drive, extract_binaries="pdf"), drive)
    assert run.returncode == 2 and "extract_binaries" in run.stderr, run.stderr
    run = sync(tmp_path, config(drive, folder_ids=["a' or name = 'x"]), drive)
    assert run.returncode == 2 and "folder_ids" in run.stderr, run.stderr
    assert not drive.served("/drive/v3/files")


PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def peak_rss_kib(cfg_path: Path) -> int:
    """The tap process's peak resident memory (KiB), measured by a fresh parent."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(BIN / TAP), "--config",
                          str(cfg_path)], capture_output=True, text=True, timeout=300,
                         check=True).stdout.split()
    assert out[0] == "0"
    return int(out[1])


def test_a_big_file_is_streamed_with_bounded_memory(drive: DriveApi, tmp_path: Path) -> None:
    folder = drive.folder("big")
    body = (b"0123456789abcdef" * 4096 + b"\n") * 1024  # 64 MiB + 1 KiB
    big = drive.add("huge.txt", "text/plain", body, parent=folder["id"])
    small_folder = drive.folder("small")
    drive.add("tiny.txt", "text/plain", "tiny", parent=small_folder["id"])
    cap = 256 * 1024
    cfg = tmp_path / "big.json"
    cfg.write_text(json.dumps(config(drive, folder_ids=[folder["id"]],
                                     max_content_bytes=cap)))
    small = tmp_path / "small.json"
    small.write_text(json.dumps(config(drive, folder_ids=[small_folder["id"]])))
    grown = peak_rss_kib(cfg) - peak_rss_kib(small)
    assert grown < 24 * 1024, f"the tap grew {grown} KiB for a 64 MiB file"

    run = sync(tmp_path, config(drive, folder_ids=[folder["id"]], max_content_bytes=cap),
               drive)
    [doc] = run.records("documents")
    assert (doc["content_bytes"], doc["content_truncated"]) == (len(body), True)
    assert doc["content"] == body[:cap].decode()
    assert doc["content_sha256"] == hashlib.sha256(body).hexdigest()
    assert big["id"] == doc["id"] and "content keeps the first 262144" in run.stderr
