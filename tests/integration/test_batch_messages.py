"""BATCH messages into target-dativo-iceberg: jsonl (gzip, none) and Parquet manifests
land the same rows and the same dead letters as RECORD lines, STATE waits for the
commit, and an unreadable file names the line and the file."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import REPO, emitted_states, read_table, run_target
from tests.services.s3 import S3Server

CONTRACT = REPO / "odcs_contracts" / "demo" / "crm" / "customers.odcs.yaml"
TABLE = ("acme", "crm", "customers")
DEAD = ("acme", "crm", "customers__dead_letter")
SCHEMA = {
    "type": "SCHEMA", "stream": "customers", "key_properties": ["customer_id"],
    "schema": {"type": "object", "properties": {
        "customer_id": {"type": "integer"}, "email": {"type": "string"},
        "full_name": {"type": ["string", "null"]}, "country": {"type": ["string", "null"]},
        "signup_date": {"type": "string", "format": "date"},
        "lifetime_value": {"type": ["number", "null"]}, "tier": {"type": ["string", "null"]},
    }},
}


def customer(i: int, **overrides: Any) -> dict[str, Any]:
    row = {"customer_id": i, "email": f"c{i}@example.com", "full_name": f"Customer {i}",
           "country": "DE", "signup_date": "2024-01-02", "lifetime_value": Decimal("12.50"),
           "tier": "gold"}
    row.update(overrides)
    return row


# One valid row, then one row per contract rule; reasons as RECORDs get them.
ROWS = [
    customer(1),
    customer(2, email="not-an-email"),
    customer(3, country="Germany"),
    customer(4, lifetime_value=Decimal("-1.00")),
    customer(5, tier="platinum"),
    customer(6, signup_date="2024-02-30"),
    customer(7, full_name=None),
    customer(8, country=None, tier=None, lifetime_value=None),
]
EXPECTED_REASONS = {
    2: [{"field": "email", "rule": "format"}],
    3: [{"field": "country", "rule": "pattern"}],
    4: [{"field": "lifetime_value", "rule": "minimum"}],
    5: [{"field": "tier", "rule": "validValues"}],
    6: [{"field": "signup_date", "rule": "type"}],
    7: [{"field": "full_name", "rule": "required"}],
}


def dumps(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, default=lambda v: orjson.Fragment(str(v)))


def lines(messages: list[dict[str, Any]]) -> bytes:
    """Singer messages as compact JSON lines, decimals digit for digit (as singer-sdk)."""
    return b"".join(dumps(m) + b"\n" for m in messages)


def write_jsonl(path: Path, rows: list[dict[str, Any]], *, gzipped: bool) -> str:
    data = b"".join(dumps(r) + b"\n" for r in rows)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path.as_uri()


def write_parquet(path: Path, table: pa.Table, **kwargs: Any) -> str:
    pq.write_table(table, path, **kwargs)
    return path.as_uri()


def batch(manifest: list[str], fmt: str = "jsonl", compression: str = "none") -> dict[str, Any]:
    return {"type": "BATCH", "stream": "customers",
            "encoding": {"format": fmt, "compression": compression}, "manifest": manifest}


def state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"customers": {"n": n}}}}


@pytest.fixture
def config(tmp_path: Path, target_config: Callable[..., Path]) -> Callable[..., Path]:
    contracts = tmp_path / "contracts" / "acme" / "crm"
    contracts.mkdir(parents=True)
    shutil.copy(CONTRACT, contracts / "customers.odcs.yaml")
    text = (contracts / "customers.odcs.yaml").read_text().replace("tenant: demo", "tenant: acme")
    (contracts / "customers.odcs.yaml").write_text(text)

    def _config(**overrides: Any) -> Path:
        # The BATCH files of these tests are written under tmp_path.
        return target_config(**{"contracts_dir": str(tmp_path / "contracts"),
                                "batch_roots": [str(tmp_path)], **overrides})

    return _config


def landed(catalog: Catalog) -> list[dict[str, Any]]:
    return sorted(read_table(catalog, TABLE).to_pylist(), key=lambda r: r["customer_id"])


def dead_letters(catalog: Catalog) -> dict[int, dict[str, Any]]:
    rows = read_table(catalog, DEAD).to_pylist()
    return {orjson.loads(r["record_json"])["customer_id"]: r for r in rows}


def assert_loaded_like_records(catalog: Catalog, batch_line: int) -> None:
    rows = landed(catalog)
    assert [r["customer_id"] for r in rows] == [1, 8]
    first = rows[0]
    assert (first["email"], first["full_name"], first["country"], first["tier"]) == (
        "c1@example.com", "Customer 1", "DE", "gold")
    assert first["lifetime_value"] == Decimal("12.50")
    assert first["signup_date"].isoformat() == "2024-01-02"
    assert (rows[1]["country"], rows[1]["tier"], rows[1]["lifetime_value"]) == (None, None, None)
    dead = dead_letters(catalog)
    assert {i: d["reasons"] for i, d in dead.items()} == EXPECTED_REASONS
    assert {d["line_number"] for d in dead.values()} == {batch_line}
    assert {d["stream"] for d in dead.values()} == {"customers"}


def test_records_reference(config: Callable[..., Path],
                           open_catalog: Callable[[], Catalog]) -> None:
    """The RECORD path gives EXPECTED_REASONS: the baseline BATCH must match."""
    records = [{"type": "RECORD", "stream": "customers", "record": r} for r in ROWS]
    result = run_target(config(), lines([SCHEMA, *records, state(1)]))
    assert result.returncode == 0, result.stderr.decode()
    dead = dead_letters(open_catalog())
    assert {i: d["reasons"] for i, d in dead.items()} == EXPECTED_REASONS
    assert [r["customer_id"] for r in landed(open_catalog())] == [1, 8]


@pytest.mark.parametrize(("gzipped", "declared"), [
    (True, "gzip"), (False, "none"),
    (True, "none"),  # singer-sdk 0.54's jsonl batcher gzips whatever the config says
])
@pytest.mark.parametrize("route", ["direct", "spooled"])
def test_jsonl_manifest_lands_values_and_dead_letters(
    tmp_path: Path, config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    gzipped: bool, declared: str, route: str,
) -> None:
    """Files within batch_max_bytes are parsed directly; bigger ones are spooled in
    batch_size_rows pieces (here: batch_max_bytes=1, and pieces of 2 rows)."""
    first = write_jsonl(tmp_path / "part-1.jsonl", ROWS[:5], gzipped=gzipped)
    second = write_jsonl(tmp_path / "part-2.jsonl", ROWS[5:], gzipped=gzipped)
    messages = [SCHEMA, batch([first, second], compression=declared), state(8)]
    limits = {"batch_max_bytes": 1} if route == "spooled" else {}
    result = run_target(config(batch_size_rows=2, **limits), lines(messages))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [state(8)["value"]]
    catalog = open_catalog()
    assert_loaded_like_records(catalog, batch_line=2)
    # The dead letter holds the record exactly as the file had it.
    assert dead_letters(catalog)[4]["record_json"] == dumps(ROWS[3]).decode()
    summary = catalog.load_table(TABLE).current_snapshot().summary
    assert orjson.loads(summary["dativo.state"]) == state(8)["value"]


def test_parquet_manifest_is_checked_like_records(
    tmp_path: Path, config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    table = pa.Table.from_pylist(ROWS)  # decimal128 lifetime_value, string signup_date
    assert pa.types.is_decimal(table.schema.field("lifetime_value").type)
    uri = write_parquet(tmp_path / "customers.parquet", table, row_group_size=3)
    result = run_target(config(batch_size_rows=4),
                        lines([SCHEMA, batch([uri], "parquet"), state(8)]))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [state(8)["value"]]
    catalog = open_catalog()
    assert_loaded_like_records(catalog, batch_line=2)
    kept = orjson.loads(dead_letters(catalog)[3]["record_json"])
    assert (kept["country"], kept["customer_id"]) == ("Germany", 3)


def test_parquet_with_lossy_columns_gets_per_row_reasons(
    tmp_path: Path, config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """Text in an integer column, floats for a decimal: each row is judged as a RECORD
    with those JSON values would be ("12" is a number, "x" is not)."""
    table = pa.table({
        "customer_id": ["1", "x", "3"],
        "email": ["a@b.io", "b@b.io", "c@b.io"],
        "full_name": ["A", "B", "C"],
        "signup_date": pa.array([0, 1, 19_000], pa.date32()),
        "lifetime_value": [1.25, 2.5, 0.125],
        "extra": [1, 2, 3],
    })
    uri = write_parquet(tmp_path / "lossy.parquet", table)
    result = run_target(config(), lines([SCHEMA, state(0), batch([uri], "parquet"),
                                                state(3)]))
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    rows = landed(catalog)
    assert [(r["customer_id"], r["lifetime_value"], r["signup_date"].isoformat())
            for r in rows] == [(1, Decimal("1.25"), "1970-01-01")]
    dead = read_table(catalog, DEAD).to_pylist()
    reasons = {orjson.loads(d["record_json"])["email"]: d["reasons"] for d in dead}
    assert reasons == {"b@b.io": [{"field": "customer_id", "rule": "type"}],
                       "c@b.io": [{"field": "lifetime_value", "rule": "scale"}]}
    assert {d["line_number"] for d in dead} == {3}


def test_state_after_batch_waits_for_its_commit(
    tmp_path: Path, config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """RECORDs and BATCHes, each followed by a STATE: the STATEs come out in order, and
    each one rides in the snapshot that holds exactly the rows sent before it."""
    jsonl = write_jsonl(tmp_path / "a.jsonl", [customer(i) for i in range(10, 20)],
                        gzipped=True)
    parquet = write_parquet(tmp_path / "b.parquet",
                            pa.Table.from_pylist([customer(i) for i in range(20, 25)]))
    records = [{"type": "RECORD", "stream": "customers", "record": customer(i)}
               for i in range(1, 4)]
    messages = [SCHEMA, *records, state(3), batch([jsonl], compression="gzip"), state(19),
                batch([parquet], "parquet"), state(24)]
    result = run_target(config(commit_interval_seconds=0), lines(messages))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [state(n)["value"] for n in (3, 19, 24)]
    table = open_catalog().load_table(TABLE)
    covered = {}
    for snapshot in table.snapshots():
        ids = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow().column("customer_id")
        bookmark = orjson.loads(snapshot.summary["dativo.state"])["bookmarks"]["customers"]
        covered[bookmark["n"]] = max(ids.to_pylist())
    assert covered == {3: 3, 19: 19, 24: 24}


def test_failing_batch_emits_no_state_past_the_last_commit(
    tmp_path: Path, config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [customer(i) for i in range(10, 20)],
                       gzipped=False)
    missing = (tmp_path / "gone.parquet").as_uri()
    messages = [SCHEMA, batch([good]), state(19), batch([missing], "parquet"), state(99)]
    result = run_target(config(commit_interval_seconds=0), lines(messages))
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert f"line 4: stream 'customers': BATCH manifest file {missing} cannot be read" in stderr
    assert "Traceback" not in stderr
    emitted = emitted_states(result)
    assert emitted in ([], [state(19)["value"]])
    if emitted:  # the STATE that got out is covered by committed rows
        ids = read_table(open_catalog(), TABLE).column("customer_id").to_pylist()
        assert sorted(ids) == list(range(10, 20))


def test_unreadable_jsonl_row_names_line_file_and_row(
    tmp_path: Path, config: Callable[..., Path]
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_bytes(dumps(customer(1)) + b"\n" + b'{"customer_id": 2, "email": \n')
    result = run_target(config(), lines([SCHEMA, batch([path.as_uri()]), state(1)]))
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert f"line 2: stream 'customers': BATCH file {path.as_uri()} row 2" in stderr, stderr
    assert result.stdout == b""


@pytest.mark.parametrize(("message", "error"), [
    (batch(["x"], "avro"), "line 2: BATCH for stream 'customers': encoding.format 'avro'"),
    (batch(["x"], compression="zstd"), "encoding.compression 'zstd' is not supported"),
    ({"type": "BATCH", "stream": "customers", "encoding": {"format": "jsonl"},
      "manifest": "file:///x"}, "'manifest' must be a list of file URIs"),
    ({**batch(["x"]), "stream": "orders"},
     "line 2: BATCH for stream 'orders' arrived before its SCHEMA message"),
])
def test_bad_batch_messages_get_one_clear_line(
    config: Callable[..., Path], message: dict[str, Any], error: str
) -> None:
    result = run_target(config(), lines([SCHEMA, message]))
    assert result.returncode == 2
    assert error in result.stderr.decode(), result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_corrupt_gzip_names_the_file(tmp_path: Path, config: Callable[..., Path]) -> None:
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(dumps(customer(1)) + b"\n")[:-12])
    result = run_target(config(), lines([SCHEMA, batch([path.as_uri()], "jsonl",
                                                              "gzip")]))
    assert result.returncode == 2
    assert f"line 2: stream 'customers': BATCH manifest file {path.as_uri()} cannot be " \
           "read" in result.stderr.decode()


def test_s3_manifest_files_are_read_with_the_environment_credentials(
    s3: S3Server, config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """s3:// URIs as singer-sdk writes them with an S3 storage root; the target finds
    the server and key through the standard AWS environment variables."""
    bucket = s3.create_bucket("batch-files")
    store = s3.filesystem()
    with store.open_output_stream(f"{bucket}/run/part-1.parquet") as out:
        pq.write_table(pa.Table.from_pylist(ROWS[:4]), out)
    with store.open_output_stream(f"{bucket}/run/part-2.jsonl.gz", compression=None) as out:
        out.write(gzip.compress(b"".join(dumps(r) + b"\n" for r in ROWS[4:])))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_REGION", s3.region)
    messages = [SCHEMA, batch([f"s3://{bucket}/run/part-1.parquet"], "parquet"),
                batch([f"s3://{bucket}/run/part-2.jsonl.gz"], "jsonl", "gzip"), state(8)]
    s3_config = config(batch_roots=[f"s3://{bucket}/run"])
    result = run_target(s3_config, lines(messages))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [state(8)["value"]]
    catalog = open_catalog()
    assert [r["customer_id"] for r in landed(catalog)] == [1, 8]
    dead = dead_letters(catalog)
    assert {i: d["reasons"] for i, d in dead.items()} == EXPECTED_REASONS
    assert {i: d["line_number"] for i, d in dead.items()} == {
        2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3}
    assert s3.secret_key.encode() not in result.stderr

    missing = f"s3://{bucket}/run/part-3.parquet"
    result = run_target(s3_config, lines([SCHEMA, batch([missing], "parquet")]))
    assert result.returncode == 2
    assert f"line 2: stream 'customers': BATCH manifest file {missing} cannot be " \
           "read" in result.stderr.decode()


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_freeze_rejects_batch_rows_with_unknown_columns(
    tmp_path: Path, config: Callable[..., Path], open_catalog: Callable[[], Catalog], fmt: str
) -> None:
    rows = [customer(1, referrer=None), customer(2, referrer="ads"), customer(3)]
    if fmt == "parquet":
        uri = write_parquet(tmp_path / "f.parquet", pa.Table.from_pylist(rows))
    else:
        uri = write_jsonl(tmp_path / "f.jsonl", rows, gzipped=False)
    result = run_target(config(schema_evolution="freeze"),
                        lines([SCHEMA, batch([uri], fmt), state(3)]))
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    assert [r["customer_id"] for r in landed(catalog)] == [1, 3]
    assert {i: d["reasons"] for i, d in dead_letters(catalog).items()} == {
        2: [{"field": "referrer", "rule": "unknownColumn"}]}
    assert f"1 row(s) of BATCH file {uri} row 2 rejected" in result.stderr.decode()


def test_parquet_dictionary_and_null_columns_take_the_typed_path(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """Dictionary-encoded text (pandas categoricals) is text, an all-null column has no
    value to check, and a float in an integer column is a type error, not a cast."""
    schema = {"type": "SCHEMA", "stream": "m", "key_properties": ["id"],
              "schema": {"type": "object", "properties": {
                  "id": {"type": "integer"}, "n": {"type": ["integer", "null"]},
                  "label": {"type": ["string", "null"]}, "gone": {"type": ["string", "null"]}}}}
    typed = pa.table({"id": [1, 2], "n": [7, None],
                      "label": pa.array(["a", None]).dictionary_encode(),
                      "gone": pa.nulls(2)})
    floats = pa.table({"id": [3, 4], "n": [1.0, 2.5]})
    manifest = [write_parquet(tmp_path / "typed.parquet", typed),
                write_parquet(tmp_path / "floats.parquet", floats)]
    message = {"type": "BATCH", "stream": "m", "encoding": {"format": "parquet"},
               "manifest": manifest}
    result = run_target(target_config(batch_roots=[str(tmp_path)]),
                        lines([schema, message, state(3)]))
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    rows = read_table(catalog, ("acme", "default", "m")).sort_by("id").to_pylist()
    assert rows == [{"id": 1, "n": 7, "label": "a", "gone": None},
                    {"id": 2, "n": None, "label": None, "gone": None}]
    dead = read_table(catalog, ("acme", "default", "m__dead_letter")).to_pylist()
    assert sorted((orjson.loads(d["record_json"])["id"], d["reasons"]) for d in dead) == [
        (3, [{"field": "n", "rule": "type"}]), (4, [{"field": "n", "rule": "type"}])]


def test_batch_rows_take_part_in_activate_version(
    tmp_path: Path, config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """singer-sdk's BATCH messages carry no version (the activated one applies); a
    BATCH message's own ``version`` stamps its rows, as RECORDs' versions do."""
    def activate(version: int) -> dict[str, Any]:
        return {"type": "ACTIVATE_VERSION", "stream": "customers", "version": version}

    first = write_parquet(tmp_path / "v100.parquet",
                          pa.Table.from_pylist([customer(i) for i in (1, 2, 3)]))
    second = write_jsonl(tmp_path / "v200.jsonl", [customer(i) for i in (1, 2)],
                         gzipped=True)
    third = write_parquet(tmp_path / "v300.parquet", pa.Table.from_pylist([customer(9)]))
    runs = [
        [SCHEMA, activate(100), batch([first], "parquet"), state(1)],
        [SCHEMA, activate(200), {**batch([second], compression="gzip"), "version": 200},
         state(2)],
        [SCHEMA, {**batch([third], "parquet"), "version": 300}, activate(300), state(3)],
    ]
    cfg = config(commit_interval_seconds=3600)
    for messages in runs:
        result = run_target(cfg, lines(messages))
        assert result.returncode == 0, result.stderr.decode()
        assert emitted_states(result) == [messages[-1]["value"]]
        if messages is runs[1]:
            rows = read_table(open_catalog(), TABLE).to_pylist()
            assert sorted((r["customer_id"], r["_sdc_table_version"]) for r in rows
                          if r["_sdc_deleted_at"] is None) == [(1, 200), (2, 200)]
    rows = read_table(open_catalog(), TABLE).to_pylist()
    assert sorted((r["customer_id"], r["_sdc_table_version"]) for r in rows
                  if r["_sdc_deleted_at"] is None) == [(9, 300)]
    assert sorted((r["customer_id"], r["_sdc_table_version"]) for r in rows
                  if r["_sdc_deleted_at"] is not None) == [
        (1, 100), (1, 200), (2, 100), (2, 200), (3, 100)]


def test_batch_version_must_be_an_integer(config: Callable[..., Path]) -> None:
    result = run_target(config(), lines([SCHEMA, {**batch(["x"]), "version": "v1"}]))
    assert result.returncode == 2
    assert "line 2: BATCH for stream 'customers': 'version' must be an integer, got 'v1'" \
        in result.stderr.decode()


@pytest.mark.parametrize("route", ["direct", "spooled"])
def test_jsonl_blank_lines_crlf_and_type_errors(
    tmp_path: Path, config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    route: str,
) -> None:
    """Blank lines and CRLF endings are no records, on both routes. In the second file
    a type error makes pyarrow refuse it, so it is checked per record."""
    def messy(name: str, *rows: dict[str, Any]) -> str:
        data = b"\r\n" + b"\r\n\r\n  \r\n".join(dumps(r) for r in rows)
        (tmp_path / name).write_bytes(gzip.compress(data))
        return (tmp_path / name).as_uri()

    manifest = [messy("a.jsonl.gz", customer(1), customer(3, tier="platinum"), customer(4)),
                messy("b.jsonl.gz", customer(5), customer(6, customer_id="six"),
                      customer(7, email="nope"))]
    limits = {"batch_max_bytes": 1} if route == "spooled" else {}
    result = run_target(config(**limits),
                        lines([SCHEMA, batch(manifest, compression="gzip"), state(7)]))
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    assert [r["customer_id"] for r in landed(catalog)] == [1, 4, 5]
    dead = read_table(catalog, DEAD).to_pylist()
    assert sorted((d["record_json"], d["reasons"][0]["rule"]) for d in dead) == sorted([
        (dumps(customer(3, tier="platinum")).decode(), "validValues"),
        (dumps(customer(6, customer_id="six")).decode(), "type"),
        (dumps(customer(7, email="nope")).decode(), "format")])
    summary = orjson.loads(result.stderr.decode().split("Run summary: ")[1].splitlines()[0])
    assert summary["streams"]["customers"]["received"] == 6


FREE_JSON_SCHEMA = {
    "type": "SCHEMA", "stream": "docs", "key_properties": ["id"],
    "schema": {"type": "object", "properties": {
        "id": {"type": ["integer"]},
        "attrs": {"anyOf": [{"type": "object"}, {"type": "array"}, {"type": "string"},
                            {"type": "null"}]},
    }},
}
FREE_JSON_VALUES = [{"plan": "p1", "tags": ["a", "b c"]}, [1, 2.5], "just text", None]


def test_parquet_json_text_lands_like_record_json(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """A free-JSON column as Arrow's JSON type (how tap-dativo-postgres sends json and
    jsonb) is JSON text: it lands as the same compact text the RECORD path stores. A
    plain string column in that field holds JSON string values instead."""
    records = [{"type": "RECORD", "stream": "docs", "record": {"id": i, "attrs": value}}
               for i, value in enumerate(FREE_JSON_VALUES)]
    # PostgreSQL's jsonb text has spaces; a JSON null is the text null, not SQL NULL.
    spaced = [orjson.dumps(v).decode().replace(",", ", ") for v in FREE_JSON_VALUES]
    ids = list(range(len(FREE_JSON_VALUES)))
    json_text = write_parquet(tmp_path / "json.parquet", pa.table(
        {"id": ids, "attrs": pa.array(spaced, pa.json_())}))
    plain = write_parquet(tmp_path / "plain.parquet", pa.table(
        {"id": ids, "attrs": pa.array(spaced, pa.string())}))

    stored = {}
    for name, messages in (("records", records),
                           ("json", [batch([json_text], "parquet")]),
                           ("plain", [batch([plain], "parquet")])):
        stream = f"docs_{name}"
        sent = [{**m, "stream": stream} for m in [FREE_JSON_SCHEMA, *messages]]
        result = run_target(target_config(batch_roots=[str(tmp_path)]), lines(sent))
        assert result.returncode == 0, result.stderr.decode()
        rows = read_table(open_catalog(), ("acme", "default", stream)).to_pylist()
        stored[name] = [r["attrs"] for r in sorted(rows, key=lambda r: r["id"])]
    assert stored["json"] == stored["records"]
    assert [None if t is None else orjson.loads(t) for t in stored["json"]] == FREE_JSON_VALUES
    assert [None if t is None else orjson.loads(t) for t in stored["plain"]] == spaced
