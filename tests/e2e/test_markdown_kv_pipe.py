"""tap-dativo-markdown-kv | target-dativo-iceberg through a real shell pipe.

Rows are rendered with the codec into both dialects, read back by the tap, and must
land in Iceberg value for value; a rerun with the state and one edited file (upsert)
replaces exactly that file's rows.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog

from dativo.markdown_kv import Document, Section, render_document, render_records
from tests.conftest import BIN, read_table

ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "Ann Example", "amount": 12.5, "vip": True, "code": "0042",
     "note": "Call first.\nThen ship:\n  - by noon", "tags": ["rush", "gift"]},
    {"id": 2, "name": "true", "amount": 7.0, "vip": False, "code": "12",
     "note": "```sql\nselect 1 -- a: b :: c\n```", "tags": []},
    {"id": 3, "name": "  Zoë 😀  ", "amount": None, "vip": None, "code": "",
     "note": "para one\n\npara two", "tags": None},
]
COLUMNS = ["id", "name", "amount", "vip", "code", "note", "tags"]

PIPE = (
    '"$TAP" --config "$1" ${TAP_STATE:+--state "$TAP_STATE"} 2>"$3" '
    '| "$TARGET" --config "$2" 2>"$4"\n'
    'status=("${PIPESTATUS[@]}")\n'
    'echo "${status[@]}" >"$5"\n'
    'exit $(( status[0] ? status[0] : status[1] ))\n'
)


def pipe(root: Path, tap_config: Path, target_config: Path, name: str,
         state: Path | None = None) -> tuple[list[int], list[Any], str]:
    """Run ``tap | target`` in bash; return (exit codes, STATE lines, both stderrs)."""
    logs = root / name
    logs.mkdir()
    env = {**os.environ, "TAP": str(BIN / "tap-dativo-markdown-kv"),
           "TARGET": str(BIN / "target-dativo-iceberg"), "TAP_STATE": str(state or ""),
           "PYTHONWARNINGS": "ignore"}
    args = [tap_config, target_config, logs / "tap.err", logs / "target.err", logs / "status"]
    result = subprocess.run(["bash", "-c", PIPE, "pipe", *map(str, args)], capture_output=True,
                            timeout=180, cwd=root, env=env)
    codes = [int(c) for c in (logs / "status").read_text().split()]
    states = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return codes, states, (logs / "tap.err").read_text() + (logs / "target.err").read_text()


def sectioned(row: dict[str, Any]) -> str:
    """A row as a sectioned document: id in the front matter, the rest in two sections."""
    head = {k: row[k] for k in ("name", "amount", "vip")}
    rest = {k: row[k] for k in ("code", "note", "tags")}
    return render_document(Document(str(row["id"]), {"id": row["id"]},
                                    (Section("customer", head), Section("details", rest))))


def landed(catalog: Catalog, table: str) -> list[dict[str, Any]]:
    rows = read_table(catalog, ("acme", "default", table)).to_pylist()
    return sorted(({k: r[k] for k in COLUMNS} for r in rows), key=lambda r: r["id"])


def test_both_dialects_land_value_for_value_and_rerun_upserts_one_file(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    blocks = tmp_path / "blocks"
    blocks.mkdir()
    (blocks / "a.md").write_text(render_records(
        [(str(r["id"]), r) for r in ROWS[:2]], COLUMNS, title="customers"), encoding="utf-8")
    (blocks / "b.md").write_text(render_records([("3", ROWS[2])], COLUMNS), encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    for row in ROWS:
        (docs / f"{row['id']}.md").write_text(sectioned(row), encoding="utf-8")
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(json.dumps({"files": [
        {"entity": "blocks", "path": str(blocks / "*.md"), "keys": ["id"]},
        {"entity": "docs", "path": str(docs / "*.md"), "keys": ["id"]},
    ]}))
    target = target_config(validation_mode="strict", load_method="upsert")

    codes, states, logs = pipe(tmp_path, tap_config, target, "first")
    assert codes == [0, 0], logs
    catalog = open_catalog()
    assert landed(catalog, "blocks") == ROWS
    assert landed(catalog, "docs") == ROWS
    table = read_table(catalog, ("acme", "default", "blocks"))
    assert [str(table.schema.field(n).type) for n in COLUMNS] == [
        "int64", "string", "double", "bool", "string", "string", "list<element: string>"]
    by_id = {r["id"]: r for r in table.to_pylist()}
    assert [(by_id[i]["_sdc_doc_id"], by_id[i]["_sdc_source_file"],
             by_id[i]["_sdc_source_lineno"]) for i in (1, 2, 3)] == [
        ("1", str(blocks / "a.md"), 3), ("2", str(blocks / "a.md"), 17),
        ("3", str(blocks / "b.md"), 1)]
    assert "Traceback" not in logs

    state = tmp_path / "state.json"
    state.write_text(json.dumps(states[-1]))
    edited = {**ROWS[1], "name": "Bo", "tags": ["late"]}
    (blocks / "a.md").write_text(render_records(
        [("1", ROWS[0]), ("2", edited)], COLUMNS), encoding="utf-8")
    os.utime(blocks / "a.md", ns=(os.stat(blocks / "a.md").st_mtime_ns + 10**9,) * 2)
    codes, states, logs = pipe(tmp_path, tap_config, target, "second", state)
    assert codes == [0, 0], logs
    assert f"skipping unchanged file {blocks / 'b.md'}" in logs
    assert f"skipping unchanged file {docs / '1.md'}" in logs
    catalog = open_catalog()
    assert landed(catalog, "blocks") == [ROWS[0], edited, ROWS[2]]
    assert landed(catalog, "docs") == ROWS
