"""Issue 12, findings 4, 5 and 7: names and shapes, against the real target process.

- A SCHEMA (or contract) nested deeper than 32 levels is refused before any table is
  touched, and ``dativo table show --all`` reports a table it cannot read and goes on.
- Identifiers are matched whole: a trailing newline in a tenant, domain, stream, table
  or column name is refused, never stripped into someone else's name.
- A stream name cannot produce a reserved table suffix, two streams of one run never
  share a table, and non-ASCII names are kept.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from dativo.iceberg.tables import all_tables
from tests.conftest import BIN, REPO, emitted_states, read_table, run_target, singer_lines

STATE = {"type": "STATE", "value": {"bookmarks": {"done": True}}}


def schema(stream: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["id"],
            "schema": {"type": "object", "properties": properties or {
                "id": {"type": "integer"}, "name": {"type": ["string", "null"]}}}}


def record(stream: str, **values: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": {"id": 1, **values}}


def nested(depth: int) -> tuple[dict[str, Any], Any]:
    """A property whose leaf column is ``depth`` levels deep (a top-level column is 1),
    and a value for it."""
    prop: dict[str, Any] = {"type": "integer"}
    value: Any = 7
    for level in range(depth - 1, 0, -1):
        prop = {"type": "object", "properties": {f"l{level}": prop}}
        value = {f"l{level}": value}
    return prop, value


def error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The run's one ERROR line; there must be exactly one, and no traceback."""
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, stderr
    return errors[0]


def dativo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dativo"), *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def contract(root: Path, *, tenant: str = "acme", domain: str = "sales",
             name: str = "users", properties: str | None = None,
             folder: str = "sales") -> Path:
    """An ODCS contract under ``root/acme/<folder>/users.odcs.yaml``; names are written
    as JSON strings, so a newline in one stays in the value."""
    import json

    path = root / "acme" / folder / "users.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    props = properties or "      - {name: id, logicalType: integer, required: true}\n"
    path.write_text(
        "apiVersion: v3.0.2\nkind: DataContract\nid: users\nversion: 1.0.0\n"
        f"status: active\ntenant: {json.dumps(tenant)}\ndomain: {json.dumps(domain)}\n"
        f"schema:\n  - name: {json.dumps(name)}\n    properties:\n{props}")
    return path


# -- finding 4: nesting depth -------------------------------------------------------

@pytest.mark.parametrize("depth", [33, 64, 80])
def test_too_deep_schema_is_refused_before_the_catalog_and_the_stream_loads_later(
    depth: int, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    config = target_config()
    sane = run_target(config, singer_lines([schema("users"), record("users"), STATE]))
    assert sane.returncode == 0, sane.stderr.decode()

    prop, value = nested(depth)
    deep = run_target(config, singer_lines([
        schema("deep", {"id": {"type": "integer"}, "n": prop}), record("deep", n=value),
        STATE]))
    assert deep.returncode == 2
    line = error_line(deep)
    path = ".".join(["n", *(f"l{i}" for i in range(1, 33))])
    assert f"line 1: SCHEMA for stream 'deep': property {path} is nested 33 levels deep" \
        in line, line
    assert "at most 32" in line
    assert emitted_states(deep) == []
    assert ("acme", "default", "deep") not in all_tables(open_catalog())

    # The stream is not broken for good: a sane SCHEMA loads, and every table shows.
    again = run_target(config, singer_lines([schema("deep"), record("deep"), STATE]))
    assert again.returncode == 0, again.stderr.decode()
    shown = dativo("table", "show", "--all", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "== acme.default.deep: 1 rows ==" in shown.stdout
    assert "== acme.default.users: 1 rows ==" in shown.stdout


def test_schema_nested_32_deep_loads_and_reads_back(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    prop, value = nested(32)
    config = target_config()
    result = run_target(config, singer_lines([
        schema("deep", {"id": {"type": "integer"}, "n": prop}), record("deep", n=value),
        STATE]))
    assert result.returncode == 0, result.stderr.decode()
    rows = read_table(open_catalog(), ("acme", "default", "deep")).to_pylist()
    assert rows == [{"id": 1, "n": value}]
    assert dativo("table", "show", "--all", "--config", str(config)).returncode == 0


@pytest.mark.parametrize(("depth", "problem"), [
    (33, "is invalid: schema[0].properties[1].properties[0]"),  # one problem: one line
    (300, "is nested too deeply to read"),  # PyYAML itself gives up: still one clear line
])
def test_too_deep_contract_is_refused_with_its_path(
    depth: int, problem: str, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog]
) -> None:
    leaf = '{"name": "leaf", "logicalType": "integer"}'
    prop = leaf
    for level in range(depth - 1, 0, -1):
        prop = (f'{{"name": "l{level}", "logicalType": "object", '
                f'"properties": [{prop}]}}')
    path = contract(tmp_path / "contracts", properties=(
        "      - {name: id, logicalType: integer, required: true}\n"
        f"      - {prop}\n"))
    config = target_config(contracts_dir=str(tmp_path / "contracts"))
    result = run_target(config, singer_lines([schema("users"), record("users"), STATE]))
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr and "RecursionError" not in stderr
    assert f"contract {path} {problem}" in stderr
    assert all_tables(open_catalog()) == []
    if depth == 33:
        assert "(l1.l2.l3" in stderr and "nested 33 levels deep; at most 32" in stderr
        lint = dativo("contract", "lint", str(path))
        assert lint.returncode != 0
        assert "schema[0].properties[1]" in lint.stdout
        assert "nested 33 levels deep" in lint.stdout


def test_table_show_all_reports_an_unreadable_table_and_shows_the_others(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    config = target_config()
    result = run_target(config, singer_lines([schema("users"), record("users"), STATE]))
    assert result.returncode == 0, result.stderr.decode()
    # A table as earlier releases left it: metadata pyiceberg writes but cannot parse.
    field: pa.DataType = pa.int64()
    for level in range(80):
        field = pa.struct([pa.field(f"l{level}", field)])
    with contextlib.suppress(Exception):  # pyiceberg reads the new table back, and cannot
        open_catalog().create_table(("acme", "default", "aaa_deep"),
                                    schema=pa.schema([pa.field("n", field)]))
    assert ("acme", "default", "aaa_deep") in all_tables(open_catalog())

    shown = dativo("table", "show", "--all", "--config", str(config))
    assert shown.returncode == 1
    assert "== acme.default.users: 1 rows ==" in shown.stdout
    errors = shown.stderr.splitlines()
    assert len(errors) == 1, shown.stderr
    assert errors[0].startswith("error: table acme.default.aaa_deep cannot be read: ")


# -- finding 5: identifiers are matched whole -------------------------------------------

def test_tenant_with_trailing_newline_is_refused(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    result = run_target(target_config(tenant_id="beta\n"),
                        singer_lines([schema("users"), record("users"), STATE]))
    assert result.returncode == 2
    assert "tenant_id: 'beta\\n' is invalid" in error_line(result)
    assert result.stdout == b""
    assert all_tables(open_catalog()) == []


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"tenant": "acme\n"}, "tenant: 'acme\\n' is invalid"),
        ({"domain": "sales\n"}, "domain: 'sales\\n' contains a control or invisible character"),
        ({"name": "users\n"}, "schema[0].name: 'users\\n' contains a control"),
        ({"properties": '      - {name: "id\\n", logicalType: integer}\n'},
         "schema[0].properties[0].name: 'id\\n' contains a control"),
    ],
    ids=["tenant", "domain", "table", "column"],
)
def test_contract_identifier_with_trailing_newline_is_refused(
    fields: dict[str, str], problem: str, tmp_path: Path,
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    path = contract(tmp_path / "contracts", **fields)
    lint = dativo("contract", "lint", str(path))
    assert lint.returncode != 0
    assert problem in lint.stdout, lint.stdout

    config = target_config(contracts_dir=str(tmp_path / "contracts"))
    result = run_target(config, singer_lines([schema("users"), record("users"), STATE]))
    assert result.returncode == 2
    assert problem in result.stderr.decode()
    assert all_tables(open_catalog()) == []


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (schema("users\n"), "line 1: SCHEMA for stream 'users\\n': 'users\\n' contains a "
                            "control or invisible character"),
        (schema("users", {"id": {"type": "integer"}, "name\n": {"type": "string"}}),
         "line 1: SCHEMA for stream 'users': column 'name\\n': 'name\\n' contains a control"),
        (schema("users", {"id": {"type": "integer"}, "o": {
            "type": "object", "properties": {"x\n": {"type": "string"}}}}),
         "column 'o.x\\n': 'x\\n' contains a control"),
    ],
    ids=["stream", "column", "nested-column"],
)
def test_schema_identifier_with_trailing_newline_is_refused(
    message: dict[str, Any], problem: str, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog]
) -> None:
    result = run_target(target_config(), singer_lines([message, STATE]))
    assert result.returncode == 2
    assert problem in error_line(result)
    assert all_tables(open_catalog()) == []


# -- finding 7: stream names and table names ----------------------------------------------

def test_stream_name_cannot_write_into_a_dead_letter_table(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    forged = "orders  dead letter"
    result = run_target(target_config(), singer_lines([
        schema("orders"), record("orders", id="not a number"),
        {**schema(forged), "schema": {"type": "object", "properties": {
            "id": {"type": "integer"}, "run_id": {"type": "string"}}}},
        record(forged, run_id="forged"), STATE]))
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    dead = read_table(catalog, ("acme", "default", "orders__dead_letter")).to_pylist()
    assert [(d["stream"], d["line_number"]) for d in dead] == [("orders", 2)]
    assert read_table(catalog, ("acme", "default", "orders_dead_letter")).to_pylist() == [
        {"id": 1, "run_id": "forged"}]


def test_stream_named_like_a_dead_letter_table_sent_first_does_not_break_the_real_one(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    config = target_config()
    first = run_target(config, singer_lines([
        schema("orders__dead_letter"), record("orders__dead_letter"), STATE]))
    assert first.returncode == 0, first.stderr.decode()
    real = run_target(config, singer_lines([
        schema("orders"), record("orders"), record("orders", id="x"), STATE]))
    assert real.returncode == 0, real.stderr.decode()
    catalog = open_catalog()
    assert read_table(catalog, ("acme", "default", "orders")).num_rows == 1
    dead = read_table(catalog, ("acme", "default", "orders__dead_letter")).to_pylist()
    assert [(d["stream"], d["line_number"]) for d in dead] == [("orders", 3)]
    assert read_table(catalog, ("acme", "default", "orders_dead_letter")).num_rows == 1


@pytest.mark.parametrize(("first", "second", "table"), [
    ("a/b", "a.b", "a_b"), ("Users", "users", "users"), ("a__b", "a_b", "a_b")])
def test_two_streams_never_land_in_one_table(
    first: str, second: str, table: str, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog]
) -> None:
    result = run_target(target_config(), singer_lines([
        schema(first), record(first, name="first"), schema(second),
        record(second, name="second"), STATE]))
    assert result.returncode == 2
    line = error_line(result)
    assert (f"line 3: streams {first!r} and {second!r} would both land in table "
            f"acme.default.{table}") in line, line
    catalog = open_catalog()
    if ("acme", "default", table) in all_tables(catalog):  # rows before the error
        rows = read_table(catalog, ("acme", "default", table)).to_pylist()
        assert [r["name"] for r in rows] == ["first"]  # never the second stream's


@pytest.mark.parametrize("stream", ["", ".", "..", "///", "__"])
def test_stream_name_without_letters_or_digits_is_refused(
    stream: str, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    result = run_target(target_config(), singer_lines([schema(stream), record(stream), STATE]))
    assert result.returncode == 2
    assert f"line 1: SCHEMA for stream {stream!r}: " in error_line(result)
    assert all_tables(open_catalog()) == []


def test_non_ascii_stream_names_keep_their_letters(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    streams = {"日本語": "日本語", "Ünïcode-Straße": "ünïcode_straße", "हिन्दी": "हिन्दी"}
    messages = [m for s in streams for m in (schema(s), record(s, name=s))]
    result = run_target(target_config(), singer_lines([*messages, STATE]))
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    for stream, table in streams.items():
        rows = read_table(catalog, ("acme", "default", table)).to_pylist()
        assert rows == [{"id": 1, "name": stream}]
