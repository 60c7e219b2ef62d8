"""tap-dativo-google-drive | target-dativo-iceberg: a Drive folder lands in Iceberg, then
a change-feed run lands an edit and a delete.

The tap authenticates as a service account (a signed JWT checked by the fixture's token
endpoint); the second run resumes from the page token the target emitted as state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import emitted_states, read_table, run_target
from tests.services.google_drive_api import DOC, DriveApi
from tests.services.tap_process import run_tap

TAP = "tap-dativo-google-drive"
FILES = ("acme", "default", "files")
DOCUMENTS = ("acme", "default", "documents")
DOC_TEXT = "# Onboarding\n\n- Laptop\n- **Badge**\n"
CSV_TEXT = "sku,qty\nA-1,3\nB-2,5\n"
PDF_BYTES = b"%PDF-1.7\n\x00\x9c binary\n%%EOF\n"


@pytest.fixture
def drive() -> Iterator[DriveApi]:
    api = DriveApi().start()
    yield api
    api.stop()


def land(tmp_path: Path, drive: DriveApi, target: Path, cfg: dict[str, Any],
         state: dict[str, Any] | None) -> dict[str, Any]:
    """One tap run piped into the target; the target's last state."""
    run = run_tap(TAP, tmp_path, cfg, state=state)
    assert run.returncode == 0, run.stderr
    assert drive.service_account_info()["private_key"][40:80] not in run.stderr
    lines = "".join(json.dumps(m) + "\n" for m in run.messages).encode()
    result = run_target(target, lines)
    assert result.returncode == 0, result.stderr.decode()
    return dict(emitted_states(result)[-1])


def rows(catalog: Catalog, table: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in read_table(catalog, table).to_pylist()}


def test_drive_folder_and_change_feed_land_in_iceberg(
        drive: DriveApi, tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    folder = drive.folder("Ops")
    sub = drive.folder("Stock", parent=folder["id"])
    doc = drive.add("Onboarding", DOC, DOC_TEXT, parent=folder["id"])
    csv = drive.add("stock.csv", "text/csv", CSV_TEXT, parent=sub["id"])
    pdf = drive.add("invoice.pdf", "application/pdf", PDF_BYTES, parent=folder["id"])
    drive.add("private.txt", "text/plain", "not in the folder")
    cfg = {"service_account_key": json.dumps(drive.service_account_info()),
           "api_endpoint": drive.url, "folder_ids": [folder["id"]],
           "backoff_base_seconds": 0.01, "requests_per_second": 0}
    target = target_config(load_method="upsert")  # one row per file id

    state = land(tmp_path, drive, target, cfg, None)
    assert drive.token_grants == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    catalog = open_catalog()
    docs = rows(catalog, DOCUMENTS)
    assert set(docs) == {doc["id"], csv["id"], pdf["id"]}
    assert (docs[doc["id"]]["content"], docs[doc["id"]]["content_mime_type"]) == (
        DOC_TEXT, "text/markdown")
    assert (docs[csv["id"]]["content"], docs[csv["id"]]["content_sha256"],
            docs[csv["id"]]["content_bytes"]) == (
        CSV_TEXT, hashlib.sha256(CSV_TEXT.encode()).hexdigest(), len(CSV_TEXT))
    assert (docs[pdf["id"]]["content"], docs[pdf["id"]]["size"],
            docs[pdf["id"]]["md5Checksum"]) == (
        None, len(PDF_BYTES), hashlib.md5(PDF_BYTES).hexdigest())
    files = rows(catalog, FILES)
    assert {i: (r["name"], r["mimeType"], list(r["parents"]), r["_sdc_deleted_at"])
            for i, r in files.items()} == {
        doc["id"]: ("Onboarding", DOC, [folder["id"]], None),
        csv["id"]: ("stock.csv", "text/csv", [sub["id"]], None),
        pdf["id"]: ("invoice.pdf", "application/pdf", [folder["id"]], None)}
    assert state["bookmarks"]["documents"]["page_token"] == str(len(drive.changes) + 1)

    drive.edit(csv["id"], "sku,qty\nA-1,4\n")
    drive.delete(pdf["id"])
    land(tmp_path, drive, target, cfg, state)
    catalog = open_catalog()
    docs = rows(catalog, DOCUMENTS)
    assert docs[csv["id"]]["content"] == "sku,qty\nA-1,4\n"
    assert docs[csv["id"]]["_sdc_deleted_at"] is None
    assert docs[pdf["id"]]["_sdc_deleted_at"] is not None
    assert docs[doc["id"]]["content"] == DOC_TEXT  # untouched
    files = rows(catalog, FILES)
    assert read_table(catalog, FILES).num_rows == 3  # upserted, not appended
    assert files[pdf["id"]]["_sdc_deleted_at"] is not None
    assert files[csv["id"]]["size"] == len("sku,qty\nA-1,4\n")


def test_documents_as_markdown_kv_make_a_rag_corpus(
        drive: DriveApi, tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    folder = drive.folder("Wiki")
    doc = drive.add("Onboarding", DOC, DOC_TEXT, parent=folder["id"])
    csv = drive.add("stock.csv", "text/csv", CSV_TEXT, parent=folder["id"])
    cfg = {**drive.oauth_config(), "api_endpoint": drive.url, "folder_ids": [folder["id"]],
           "requests_per_second": 0}
    target = target_config(format="markdown_kv", load_method="upsert")
    land(tmp_path, drive, target, cfg, None)
    table = read_table(open_catalog(), ("acme", "default", "documents__markdown"))
    markdown = {r["doc_id"]: r["markdown"] for r in table.to_pylist()}
    assert set(markdown) == {doc["id"], csv["id"]}
    lines = markdown[doc["id"]].splitlines()
    assert lines[0] == f"## Record {doc['id']}"
    assert {"name: Onboarding", f"content: {json.dumps(DOC_TEXT)}",
            "content_mime_type: text/markdown"} <= set(lines)
    assert f"content: {json.dumps(CSV_TEXT)}" in markdown[csv["id"]].splitlines()
