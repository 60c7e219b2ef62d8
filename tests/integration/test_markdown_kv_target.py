"""target-dativo-iceberg with ``format: markdown_kv`` as a process: the three storage
patterns (string, raw_file, structured) in both dialects, dead letters, STATE only after
the rows or files are durable, and upsert reruns that rewrite a document in place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyiceberg.catalog import Catalog

from dativo.markdown_kv import parse_document, parse_records
from tests.conftest import emitted_states, read_table, run_target, singer_lines
from tests.services.s3 import S3Server

SCHEMA = {
    "type": "SCHEMA", "stream": "users", "key_properties": ["id"],
    "schema": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "signed_up": {"type": "string", "format": "date-time"},
        "prefs": {"type": "object", "properties": {"theme": {"type": "string"}}},
    }},
}
ANN = {"id": 1, "name": "Ann: first line\nsecond line", "signed_up": "2024-03-01T12:00:00Z",
       "prefs": {"theme": "dark"}}
BOB = {"id": 2, "name": None, "signed_up": "2024-03-02T08:30:00Z", "prefs": {"theme": "light"}}
BAD = {"id": "three", "name": "x", "signed_up": "2024-03-03T00:00:00Z", "prefs": {"theme": "x"}}
STATE = {"bookmarks": {"users": {"id": 2}}}

ANN_BLOCK = (
    "## Record 1\n\n```\nid: 1\nname: Ann: first line\n  second line\n"
    "signed_up: 2024-03-01T12:00:00Z\nprefs: {\"theme\":\"dark\"}\n```\n")
BOB_BLOCK = (
    "## Record 2\n\n```\nid: 2\nname: null\nsigned_up: 2024-03-02T08:30:00Z\n"
    "prefs: {\"theme\":\"light\"}\n```\n")
ANN_SECTIONED = (
    "---\ndoc_id: '1'\n---\n\n# users\n\nid:: 1\nname:: Ann: first line\n  second line\n"
    "signed_up:: 2024-03-01T12:00:00Z\nprefs:: {\"theme\":\"dark\"}\n")
BOB_SECTIONED = (
    "---\ndoc_id: '2'\n---\n\n# users\n\nid:: 2\nname:: null\n"
    "signed_up:: 2024-03-02T08:30:00Z\nprefs:: {\"theme\":\"light\"}\n")


def messages(*records: dict[str, Any], state: Any = STATE) -> bytes:
    out: list[dict[str, Any]] = [SCHEMA]
    out += [{"type": "RECORD", "stream": "users", "record": r} for r in records]
    return singer_lines([*out, {"type": "STATE", "value": state}])


def markdown_config(target_config: Callable[..., Path], **markdown_kv: Any) -> Path:
    extra = {k: markdown_kv.pop(k) for k in ("load_method", "batch_size_rows")
             if k in markdown_kv}
    return target_config(format="markdown_kv", markdown_kv=markdown_kv, **extra)


def load(config: Path, stdin: bytes) -> list[Any]:
    result = run_target(config, stdin)
    assert result.returncode == 0, result.stderr.decode()
    return emitted_states(result)


def rows(catalog: Catalog, table: str, *drop: str) -> list[dict[str, Any]]:
    landed = read_table(catalog, ("acme", "default", table)).to_pylist()
    for row in landed:
        for name in drop:
            row.pop(name)
    return sorted(landed, key=lambda r: (r["doc_id"], r.get("ord", 0)))


def assert_dead_lettered(catalog: Catalog, line: int) -> None:
    dead = read_table(catalog, ("acme", "default", "users__dead_letter")).to_pylist()
    assert [(d["line_number"], d["reasons"]) for d in dead] == [
        (line, [{"field": "id", "rule": "type"}])]
    assert orjson.loads(dead[0]["record_json"])["id"] == "three"


# -- string ---------------------------------------------------------------------------
@pytest.mark.parametrize(("dialect", "ann", "bob"), [
    ("record_blocks", ANN_BLOCK, BOB_BLOCK),
    ("sectioned", ANN_SECTIONED, BOB_SECTIONED),
])
def test_string_storage_has_one_row_per_valid_record_and_dead_letters_the_rest(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    dialect: str, ann: str, bob: str,
) -> None:
    before = datetime.now(timezone.utc)
    states = load(markdown_config(target_config, storage="string", dialect=dialect),
                  messages(ANN, BAD, BOB))
    assert states == [STATE]
    catalog = open_catalog()
    landed = rows(catalog, "users__markdown")
    assert [{k: r[k] for k in ("doc_id", "stream", "markdown", "source_bookmark")}
            for r in landed] == [
        {"doc_id": "1", "stream": "users", "markdown": ann, "source_bookmark": '{"id":2}'},
        {"doc_id": "2", "stream": "users", "markdown": bob, "source_bookmark": '{"id":2}'},
    ]
    assert all(before <= r["extracted_at"] <= datetime.now(timezone.utc) for r in landed)
    assert_dead_lettered(catalog, line=3)
    table = catalog.load_table(("acme", "default", "users__markdown"))
    assert orjson.loads(table.current_snapshot().summary["dativo.state"]) == STATE
    assert table.schema().identifier_field_names() == {"doc_id"}
    assert not catalog.table_exists(("acme", "default", "users"))  # no Parquet table


def test_the_rendered_text_parses_back_to_the_records(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    load(markdown_config(target_config, storage="string"), messages(ANN, BOB))
    texts = [r["markdown"] for r in rows(open_catalog(), "users__markdown")]
    assert [(b.doc_id, b.record) for t in texts for b in parse_records(t)] == [
        ("1", ANN), ("2", BOB)]


# -- raw_file -------------------------------------------------------------------------
def test_raw_file_writes_one_file_per_record_and_a_manifest(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    root = tmp_path / "md"
    states = load(markdown_config(target_config, storage="raw_file", root=root.as_uri(),
                                  path_pattern="{tenant}/{stream}/{date}/{doc_id}.md"),
                  messages(ANN, BAD, BOB))
    assert states == [STATE]
    day = datetime.now(timezone.utc).date().isoformat()  # (a run across midnight: rerun)
    folder = root / "acme" / "users" / day
    assert sorted(p.name for p in folder.iterdir()) == ["1.md", "2.md"]
    assert (folder / "1.md").read_text() == "# users\n\n" + ANN_BLOCK
    assert (folder / "2.md").read_text() == "# users\n\n" + BOB_BLOCK
    catalog = open_catalog()
    manifest = rows(catalog, "users__md_files", "written_at")
    assert manifest == [
        {"doc_id": "1", "stream": "users", "path": (folder / "1.md").as_uri(),
         "bytes": len(("# users\n\n" + ANN_BLOCK).encode())},
        {"doc_id": "2", "stream": "users", "path": (folder / "2.md").as_uri(),
         "bytes": len(("# users\n\n" + BOB_BLOCK).encode())},
    ]
    assert_dead_lettered(catalog, line=3)


def test_raw_file_sectioned_files_are_one_document_each(
    tmp_path: Path, target_config: Callable[..., Path],
) -> None:
    root = tmp_path / "md"
    load(markdown_config(target_config, storage="raw_file", dialect="sectioned",
                         root=root.as_uri()), messages(ANN, BOB))
    folder = root / "markdown_kv" / "acme" / "users"
    assert (folder / "1.md").read_text() == ANN_SECTIONED
    assert (folder / "2.md").read_text() == BOB_SECTIONED
    assert parse_document(ANN_SECTIONED).sections[0].fields == ANN


def test_raw_file_batch_files_hold_n_records_each(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    carl = {**BOB, "id": 3, "name": "Carl"}
    load(markdown_config(target_config, storage="raw_file", records_per_file=2,
                         root=(tmp_path / "md").as_uri()), messages(ANN, BOB, carl))
    folder = tmp_path / "md" / "markdown_kv" / "acme" / "users"
    assert sorted(p.name for p in folder.iterdir()) == ["1.md", "3.md"]
    assert (folder / "1.md").read_text() == f"# users\n\n{ANN_BLOCK}\n{BOB_BLOCK}"
    assert [b.record for b in parse_records((folder / "3.md").read_text())] == [carl]
    manifest = rows(open_catalog(), "users__md_files", "written_at", "bytes", "stream")
    assert manifest == [{"doc_id": "1", "path": (folder / "1.md").as_uri()},
                        {"doc_id": "2", "path": (folder / "1.md").as_uri()},
                        {"doc_id": "3", "path": (folder / "3.md").as_uri()}]


def test_raw_file_on_an_s3_warehouse(
    tmp_path: Path, s3: S3Server, target_config: Callable[..., Path],
    catalog_props: dict[str, str],
) -> None:
    bucket = s3.create_bucket("mdkv-raw")
    catalog = {**catalog_props, "warehouse": f"s3://{bucket}/lake", **s3.catalog_properties()}
    config = target_config(catalog=catalog, format="markdown_kv",
                           markdown_kv={"storage": "raw_file"})
    assert load(config, messages(ANN, BOB)) == [STATE]
    assert sorted(k for k in s3.list_objects(bucket) if k.endswith(".md")) == [
        "lake/markdown_kv/acme/users/1.md", "lake/markdown_kv/acme/users/2.md"]
    with s3.filesystem().open_input_stream(f"{bucket}/lake/markdown_kv/acme/users/1.md") as f:
        assert f.read().decode() == "# users\n\n" + ANN_BLOCK


def note_lines(keys: list[str], notes: list[dict[str, Any]]) -> bytes:
    schema = {"type": "SCHEMA", "stream": "notes", "key_properties": keys,
              "schema": {"type": "object", "properties": {
                  "folder": {"type": "string"}, "n": {"type": "integer"},
                  "text": {"type": "string"}}}}
    return singer_lines([schema, *({"type": "RECORD", "stream": "notes", "record": r}
                                   for r in notes)])


def test_raw_file_paths_percent_encode_ids(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    notes = [{"folder": "a/b", "n": 1, "text": "slash"}, {"folder": "..", "n": 2, "text": "up"},
             {"folder": "50%", "n": 3, "text": "percent"}]
    root = tmp_path / "md"
    load(markdown_config(target_config, storage="raw_file", root=root.as_uri(),
                         path_pattern="{stream}/{doc_id}/note.md"),
         note_lines(["folder"], notes))
    folder = root / "notes"
    assert sorted(p.name for p in folder.iterdir()) == ["%2E%2E", "50%25", "a%2Fb"]
    assert [(b.doc_id, b.record) for b in parse_records(
        (folder / "a%2Fb" / "note.md").read_text())] == [("a/b", notes[0])]
    manifest = rows(open_catalog(), "notes__md_files")
    assert [(r["doc_id"], r["path"].removeprefix(folder.as_uri())) for r in manifest] == [
        ("..", "/%2E%2E/note.md"), ("50%", "/50%25/note.md"), ("a/b", "/a%2Fb/note.md")]


def test_a_composite_key_joins_its_values_with_a_bar(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    load(markdown_config(target_config, storage="string"),
         note_lines(["folder", "n"], [{"folder": "x y", "n": 7, "text": "t"}]))
    [row] = rows(open_catalog(), "notes__markdown")
    assert (row["doc_id"], row["markdown"]) == (
        "x y|7", "## Record x y|7\n\n```\nfolder: x y\nn: 7\ntext: t\n```\n")


def test_no_state_when_the_files_cannot_be_written(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the root folder should be")
    result = run_target(markdown_config(target_config, storage="raw_file",
                                        root=blocker.as_uri()), messages(ANN, BOB))
    assert result.returncode == 2, result.stderr.decode()
    assert b"writing Markdown-KV file " + (blocker / "markdown_kv").as_uri().encode() \
        in result.stderr
    assert result.stdout == b""  # no STATE: its records are not durable
    manifest = read_table(open_catalog(), ("acme", "default", "users__md_files"))
    assert manifest.num_rows == 0


# -- structured -----------------------------------------------------------------------
@pytest.mark.parametrize(("dialect", "section"), [("record_blocks", ""),
                                                  ("sectioned", "users")])
def test_structured_row_per_kv_rows(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    dialect: str, section: str,
) -> None:
    load(markdown_config(target_config, storage="structured", dialect=dialect),
         messages(ANN, BAD, BOB))
    catalog = open_catalog()
    assert [tuple(r.values()) for r in rows(catalog, "users__kv")] == [
        ("1", section, "id", "1", "1", 0),
        ("1", section, "name", "Ann: first line\nsecond line",
         '"Ann: first line\\nsecond line"', 1),
        ("1", section, "signed_up", "2024-03-01T12:00:00Z", '"2024-03-01T12:00:00Z"', 2),
        ("1", section, "prefs", '{"theme":"dark"}', '{"theme":"dark"}', 3),
        ("2", section, "id", "2", "2", 0),
        ("2", section, "name", None, "null", 1),
        ("2", section, "signed_up", "2024-03-02T08:30:00Z", '"2024-03-02T08:30:00Z"', 2),
        ("2", section, "prefs", '{"theme":"light"}', '{"theme":"light"}', 3),
    ]
    assert catalog.load_table(("acme", "default", "users__kv")).schema() \
        .identifier_field_names() == {"doc_id", "section", "key"}
    assert_dead_lettered(catalog, line=3)


def test_structured_document_level_has_a_nested_sections_column(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    load(markdown_config(target_config, storage="structured", layout="document_level",
                         dialect="sectioned"), messages(ANN, BOB))
    catalog = open_catalog()
    landed = rows(catalog, "users__documents", "extracted_at")
    assert landed == [
        {"doc_id": "1", "stream": "users", "sections": [{"title": "users", "fields": [
            {"key": "id", "value": "1", "value_json": "1"},
            {"key": "name", "value": "Ann: first line\nsecond line",
             "value_json": '"Ann: first line\\nsecond line"'},
            {"key": "signed_up", "value": "2024-03-01T12:00:00Z",
             "value_json": '"2024-03-01T12:00:00Z"'},
            {"key": "prefs", "value": '{"theme":"dark"}', "value_json": '{"theme":"dark"}'},
        ]}]},
        {"doc_id": "2", "stream": "users", "sections": [{"title": "users", "fields": [
            {"key": "id", "value": "2", "value_json": "2"},
            {"key": "name", "value": None, "value_json": "null"},
            {"key": "signed_up", "value": "2024-03-02T08:30:00Z",
             "value_json": '"2024-03-02T08:30:00Z"'},
            {"key": "prefs", "value": '{"theme":"light"}', "value_json": '{"theme":"light"}'},
        ]}]},
    ]
    sections = catalog.load_table(("acme", "default", "users__documents")).schema() \
        .find_field("sections")
    assert str(sections.field_type).startswith("list<struct<")


# -- upsert reruns --------------------------------------------------------------------
ANN_V2 = {**ANN, "name": "Ann Example"}


@pytest.mark.parametrize(("settings", "table"), [
    ({"storage": "string"}, "users__markdown"),
    ({"storage": "structured"}, "users__kv"),
    ({"storage": "structured", "layout": "document_level"}, "users__documents"),
    ({"storage": "raw_file"}, "users__md_files"),
])
def test_upsert_rerun_rewrites_a_document_instead_of_duplicating_it(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    settings: dict[str, Any], table: str,
) -> None:
    config = markdown_config(target_config, load_method="upsert",
                             root=(tmp_path / "md").as_uri(), **settings)
    load(config, messages(ANN, BOB))
    first = rows(open_catalog(), table, *_volatile(table))
    assert load(config, messages(ANN_V2, BOB)) == [STATE]
    second = rows(open_catalog(), table, *_volatile(table))
    assert len(second) == len(first)
    assert [r for r in second if r["doc_id"] == "2"] == [r for r in first if r["doc_id"] == "2"]
    changed = [r for r in second if r["doc_id"] == "1"]
    if table == "users__markdown":
        assert [r["markdown"] for r in changed] == [ANN_BLOCK.replace(
            "Ann: first line\n  second line", "Ann Example")]
    elif table == "users__kv":
        assert [r["value"] for r in changed] == ["1", "Ann Example",
                                                 "2024-03-01T12:00:00Z", '{"theme":"dark"}']
    elif table == "users__documents":
        assert changed[0]["sections"][0]["fields"][1]["value"] == "Ann Example"
    else:
        files = sorted((tmp_path / "md").rglob("*.md"))
        assert [f.name for f in files] == ["1.md", "2.md"]
        assert [b.record for b in parse_records(files[0].read_text())] == [ANN_V2]
        assert [r["path"] for r in changed] == [files[0].as_uri()]


def test_upsert_refuses_batch_files_that_could_not_be_rewritten_per_document(
    tmp_path: Path, target_config: Callable[..., Path],
) -> None:
    config = markdown_config(target_config, storage="raw_file", records_per_file=2,
                             load_method="upsert", root=(tmp_path / "md").as_uri())
    result = run_target(config, messages(ANN, BOB))
    assert result.returncode == 2
    assert b"markdown_kv.records_per_file: with load_method: upsert every document needs " \
        b"a file of its own" in result.stderr
    assert not (tmp_path / "md").exists()


def _volatile(table: str) -> tuple[str, ...]:
    return {"users__markdown": ("extracted_at",), "users__kv": (),
            "users__documents": ("extracted_at",),
            "users__md_files": ("written_at", "bytes")}[table]


def test_upsert_keeps_the_last_record_of_a_doc_id_within_a_batch(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    load(markdown_config(target_config, storage="string", load_method="upsert"),
         messages(ANN, BOB, ANN_V2))
    landed = rows(open_catalog(), "users__markdown")
    assert [r["doc_id"] for r in landed] == ["1", "2"]
    assert "name: Ann Example\n" in landed[0]["markdown"]


def test_overwrite_replaces_the_documents_with_this_runs(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    config = markdown_config(target_config, storage="structured", load_method="overwrite")
    load(config, messages(ANN, BOB))
    assert load(config, messages(ANN_V2)) == [STATE]
    landed = rows(open_catalog(), "users__kv")
    assert [(r["doc_id"], r["key"], r["value"]) for r in landed] == [
        ("1", "id", "1"), ("1", "name", "Ann Example"),
        ("1", "signed_up", "2024-03-01T12:00:00Z"), ("1", "prefs", '{"theme":"dark"}')]


# -- STATE and batches ----------------------------------------------------------------
def test_each_state_follows_the_rows_it_covers(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    config = markdown_config(target_config, storage="string", batch_size_rows=1)
    stdin = singer_lines([
        SCHEMA, {"type": "RECORD", "stream": "users", "record": ANN},
        {"type": "STATE", "value": {"bookmarks": {"users": {"id": 1}}}},
        {"type": "RECORD", "stream": "users", "record": BOB},
        {"type": "STATE", "value": {"bookmarks": {"users": {"id": 2}}}},
    ])
    states = load(config, stdin)
    assert states[-1] == {"bookmarks": {"users": {"id": 2}}}
    landed = rows(open_catalog(), "users__markdown")
    assert [(r["doc_id"], r["source_bookmark"]) for r in landed] == [
        ("1", '{"id":1}'), ("2", '{"id":2}')]
    table = open_catalog().load_table(("acme", "default", "users__markdown"))
    assert orjson.loads(table.current_snapshot().summary["dativo.state"]) == states[-1]


# -- configuration --------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "message"), [
    ({"format": "markdown"},  # singer-sdk checks the declared choices first
     b"'markdown' is not one of ['parquet', 'markdown_kv'] in config['format']"),
    ({"format": "markdown_kv", "markdown_kv": {"storage": "blob"}},
     b"'blob' is not one of ['string', 'raw_file', 'structured'] in "
     b"config['markdown_kv']['storage']"),
    ({"format": "markdown_kv", "markdown_kv": {"storage": "raw_file",
                                               "path_pattern": "{stream}.md"}},
     b"markdown_kv.path_pattern: needs {doc_id}"),
    ({"format": "markdown_kv", "markdown_kv": {"path_pattern": "{doc}/{doc_id}.md"}},
     b"markdown_kv.path_pattern: unknown placeholder {doc}"),
    ({"format": "markdown_kv", "load_method": "upsert",
      "markdown_kv": {"storage": "raw_file", "path_pattern": "{date}/{doc_id}.md"}},
     b"markdown_kv.path_pattern: with load_method: upsert"),
    ({"format": "markdown_kv", "markdown_kv": {"dialect": "sectioned",
                                               "records_per_file": 5}},
     b"markdown_kv.records_per_file: a sectioned file holds one document"),
    ({"markdown_kv": {"storage": "string"}}, b"markdown_kv: only used with format"),
])
def test_bad_settings_name_the_key(
    target_config: Callable[..., Path], overrides: dict[str, Any], message: bytes,
) -> None:
    result = run_target(target_config(**overrides), messages(ANN))
    assert result.returncode == 2
    assert message in result.stderr, result.stderr.decode()
    assert result.stdout == b""


def test_raw_file_needs_a_location_uri(
    tmp_path: Path, target_config: Callable[..., Path], catalog_props: dict[str, str],
) -> None:
    config = target_config(catalog={**catalog_props, "warehouse": "lake"},
                           format="markdown_kv", markdown_kv={"storage": "raw_file"})
    result = run_target(config, messages(ANN))
    assert result.returncode == 2
    assert b"markdown_kv.root: raw files need a location URI" in result.stderr
    assert result.stdout == b""


def test_a_stream_without_a_key_fails_before_loading(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    unkeyed = {**SCHEMA, "key_properties": []}
    stdin = singer_lines([unkeyed, {"type": "RECORD", "stream": "users", "record": ANN}])
    result = run_target(markdown_config(target_config, storage="string"), stdin)
    assert result.returncode == 2
    assert b"format: markdown_kv needs a key for stream 'users'" in result.stderr
    assert not open_catalog().table_exists(("acme", "default", "users__markdown"))
