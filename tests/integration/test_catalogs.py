"""The target against every real catalog/warehouse backend: SQLite and PostgreSQL
SqlCatalogs, local and S3 (SeaweedFS) warehouses, and an Iceberg REST catalog
(SeaweedFS's, over its S3 Tables buckets). Same behaviour everywhere: exact
values, dead letters, STATE after commit and the bookmark in the snapshot summary;
on S3 the files really are in the bucket, nothing is created locally, and no secret
reaches the logs."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from pyiceberg.catalog import Catalog, load_catalog

from dativo.logs import redact_secrets
from tests.conftest import emitted_states, run_target, singer_lines
from tests.services.postgres import PostgresServer
from tests.services.s3 import S3Server

USERS = ("acme", "default", "users")
DEAD = ("acme", "default", "users__dead_letter")
SCHEMA = {
    "type": "SCHEMA", "stream": "users", "key_properties": ["id"],
    "schema": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "signed_up": {"type": "string", "format": "date-time"},
        "prefs": {"type": "object", "properties": {"theme": {"type": "string"}}},
    }},
}


def record(i: int, **overrides: object) -> dict:
    rec = {"id": i, "name": f"user {i}", "signed_up": f"2024-03-0{i}T12:00:00Z",
           "prefs": {"theme": "dark"}}
    rec.update(overrides)
    return {"type": "RECORD", "stream": "users", "record": rec}


def state(n: int) -> dict:
    return {"type": "STATE", "value": {"bookmarks": {"users": {"id": n}}}}


@dataclass
class Backend:
    """Catalog properties for one backend, and the secret values in them."""

    props: dict[str, str]
    secrets: list[str]
    bucket: str | None = None

    def open(self) -> Catalog:
        props = dict(self.props)
        return load_catalog(props.pop("name"), **props)


def postgres_uri(postgres: PostgresServer, password: str) -> str:
    """A fresh catalog database; the URI carries a password (trust auth ignores it)
    so that the tests can check it never reaches a log."""
    url = postgres.create_database(f"catalog_{uuid.uuid4().hex[:12]}")
    return url.replace(f"//{postgres.user}@", f"//{postgres.user}:{password}@")


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    catalog, warehouse = kind.split("-")
    secrets: list[str] = []
    props = {"name": f"cat{uuid.uuid4().hex[:8]}", "type": "sql"}  # no "_": see docs
    if catalog == "rest":
        s3: S3Server = request.getfixturevalue("s3")
        bucket = s3.create_table_bucket(f"tables-{uuid.uuid4().hex[:10]}")
        props.update({"type": "rest", "uri": s3.iceberg_uri, "warehouse": f"s3://{bucket}",
                      "credential": f"{s3.access_key}:{s3.secret_key}",
                      "oauth2-server-uri": f"{s3.iceberg_uri}/v1/oauth/tokens",
                      **s3.catalog_properties()})
        return Backend(props, [s3.secret_key], bucket)
    if catalog == "sqlite":
        (tmp_path / "catalog").mkdir()
        props["uri"] = f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}"
    else:
        password = f"pg-secret-{uuid.uuid4().hex}"
        secrets.append(password)
        props["uri"] = postgres_uri(request.getfixturevalue("postgres"), password)
    bucket = None
    if warehouse == "local":
        props["warehouse"] = (tmp_path / "warehouse").as_uri()
    else:
        s3: S3Server = request.getfixturevalue("s3")
        bucket = s3.create_bucket(f"wh-{uuid.uuid4().hex[:12]}")
        props["warehouse"] = f"s3://{bucket}/lake"
        props.update(s3.catalog_properties())
        secrets.append(s3.secret_key)
    return Backend(props, secrets, bucket)


@pytest.fixture(params=["sqlite-local", "postgres-local", "sqlite-s3", "postgres-s3",
                        "rest-s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


def assert_no_secret(result: subprocess.CompletedProcess[bytes], secrets: list[str]) -> None:
    for secret in secrets:
        assert secret.encode() not in result.stderr
        assert secret.encode() not in result.stdout


def test_rows_state_and_snapshots_on_every_backend(
    backend: Backend, target_config: Callable[..., Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOGLEVEL", "DEBUG")  # the most verbose logs must not leak either
    config = target_config(catalog=backend.props, batch_size_rows=2)
    first = run_target(config, singer_lines(
        [SCHEMA, record(1), record(2, name=None), record(3, id="three"), state(3)]))
    assert first.returncode == 0, first.stderr.decode()
    assert emitted_states(first) == [{"bookmarks": {"users": {"id": 3}}}]
    second = run_target(config, singer_lines([SCHEMA, record(4), state(4)]))
    assert second.returncode == 0, second.stderr.decode()
    assert emitted_states(second) == [{"bookmarks": {"users": {"id": 4}}}]

    catalog = backend.open()  # a separate client: what any other reader sees
    table = catalog.load_table(USERS)
    rows = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["name"], r["prefs"], r["signed_up"].isoformat()) for r in rows] == [
        (1, "user 1", {"theme": "dark"}, "2024-03-01T12:00:00+00:00"),
        (2, None, {"theme": "dark"}, "2024-03-02T12:00:00+00:00"),
        (4, "user 4", {"theme": "dark"}, "2024-03-04T12:00:00+00:00"),
    ]
    snapshots = table.snapshots()
    assert [orjson.loads(s.summary["dativo.state"]) for s in snapshots] == [
        {"bookmarks": {"users": {"id": 3}}}, {"bookmarks": {"users": {"id": 4}}}]
    assert snapshots[0].summary["dativo.run-id"] != snapshots[1].summary["dativo.run-id"]
    dead = catalog.load_table(DEAD).scan().to_arrow().to_pylist()
    assert [(d["line_number"], d["reasons"]) for d in dead] == [
        (4, [{"field": "id", "rule": "type"}])]
    warehouse = backend.props["warehouse"]
    for identifier in (USERS, DEAD):
        loaded = catalog.load_table(identifier)
        table_dir = f"{warehouse}/acme.default/{identifier[-1]}/"
        assert loaded.metadata_location.startswith(table_dir + "metadata/")
        assert all(p.startswith(table_dir + "data/")
                   for p in loaded.inspect.files()["file_path"].to_pylist())
    assert_no_secret(first, backend.secrets)
    assert_no_secret(second, backend.secrets)


@pytest.mark.parametrize("kind", ["sqlite-s3", "postgres-s3"])
def test_s3_warehouse_files_are_in_the_bucket_and_nothing_is_created_locally(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, s3: S3Server,
    target_config: Callable[..., Path],
) -> None:
    backend = make_backend(kind, request, tmp_path)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    before = sorted(p for p in tmp_path.rglob("*") if p != workdir)
    result = run_target(target_config(catalog=backend.props), singer_lines(
        [SCHEMA, record(1), record(2), record(3, signed_up="yesterday"), state(3)]),
        cwd=workdir)
    assert result.returncode == 0, result.stderr.decode()
    assert list(workdir.iterdir()) == []  # no output/, no "s3:" folder, no spool left
    created = sorted(p for p in tmp_path.rglob("*") if p != workdir)
    expected_new = {tmp_path / "catalog" / "catalog.db"} if kind == "sqlite-s3" else set()
    assert set(created) - set(before) - {tmp_path / p.name for p in
                                         tmp_path.glob("target-*.json")} == expected_new

    assert backend.bucket is not None
    objects = s3.list_objects(backend.bucket)
    catalog = backend.open()
    for identifier, rows in ((USERS, 2), (DEAD, 1)):
        table = catalog.load_table(identifier)
        assert table.scan().to_arrow().num_rows == rows
        files = table.inspect.files()["file_path"].to_pylist()
        assert files
        prefix = f"s3://{backend.bucket}/"
        keys = [f.removeprefix(prefix) for f in files]
        assert set(keys) <= set(objects), (keys, objects)
        assert all(k.endswith(".parquet") for k in keys)
        assert table.metadata_location.removeprefix(prefix) in objects
    table_dir = f"lake/acme.default/{USERS[-1]}/"
    assert any(o.startswith(table_dir + "data/") for o in objects)
    assert any(o.startswith(table_dir + "metadata/") and o.endswith(".metadata.json")
               for o in objects)
    assert_no_secret(result, backend.secrets)


@pytest.mark.parametrize("kind", ["sqlite-s3", "postgres-s3"])
def test_wrong_s3_secret_fails_clearly_without_printing_any_secret(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path,
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    backend = make_backend(kind, request, tmp_path)
    wrong = f"wrong-secret-{uuid.uuid4().hex}"
    props = {**backend.props, "s3.secret-access-key": wrong}
    result = run_target(target_config(catalog=props), singer_lines([SCHEMA, record(1),
                                                                    state(1)]))
    assert result.returncode == 2, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    message = result.stderr.decode()
    assert (f"catalog.warehouse: table acme.default.users cannot be read or written in "
            f"{backend.props['warehouse']}") in message
    assert "ACCESS_DENIED" in message or "SIGNATURE_DOES_NOT_MATCH" in message
    assert "check the warehouse location and its credentials" in message
    assert result.stdout == b""  # nothing committed, so no STATE
    assert_no_secret(result, [*backend.secrets, wrong])


def test_bad_catalog_uri_names_the_key_without_the_password(
    postgres: PostgresServer, tmp_path: Path, target_config: Callable[..., Path],
) -> None:
    password = f"pg-secret-{uuid.uuid4().hex}"
    props = {"name": "broken", "type": "sql", "warehouse": (tmp_path / "wh").as_uri(),
             "password": password,
             "uri": f"postgresql+psycopg2://postgres:{password}@127.0.0.1:notaport/x"}
    result = run_target(target_config(catalog=props), singer_lines([SCHEMA, record(1)]))
    assert result.returncode == 2
    assert b"catalog: cannot load catalog 'broken'" in result.stderr, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert password.encode() not in result.stderr


def test_nested_catalog_properties_as_meltano_writes_them(
    request: pytest.FixtureRequest, tmp_path: Path, s3: S3Server,
    target_config: Callable[..., Path],
) -> None:
    """Meltano nests dotted names (``catalog.s3.endpoint`` becomes ``{"s3": {...}}``)
    and gives declared but unset settings as null; the target flattens them back."""
    backend = make_backend("postgres-s3", request, tmp_path)
    nested: dict[str, object] = {k: v for k, v in backend.props.items()
                                 if not k.startswith("s3.")}
    nested["s3"] = {k.removeprefix("s3."): v for k, v in backend.props.items()
                    if k.startswith("s3.")}
    nested["credential"] = None
    result = run_target(target_config(catalog=nested),
                        singer_lines([SCHEMA, record(1), record(2), state(2)]))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [{"bookmarks": {"users": {"id": 2}}}]
    table = backend.open().load_table(USERS)
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2]
    assert backend.bucket is not None
    assert any(k.endswith(".parquet") for k in s3.list_objects(backend.bucket, "lake/"))
    assert_no_secret(result, backend.secrets)


def test_redact_secrets_removes_secret_properties_and_uri_passwords() -> None:
    props = {"uri": "postgresql+psycopg2://app:p%40ss-word@db:5432/cat",
             "s3.secret-access-key": "s3-key-value", "credential": "client:oauth-secret",
             "token": "tok-123", "warehouse": "s3://lake/wh", "s3.access-key-id": "AKIA1"}
    text = ("failed for postgresql+psycopg2://app:p%40ss-word@db:5432/cat (password "
            "p@ss-word) with client:oauth-secret, s3-key-value and tok-123 at s3://lake/wh "
            "as AKIA1")
    assert redact_secrets(text, props) == (
        "failed for postgresql+psycopg2://app:***@db:5432/cat (password ***) with ***, *** "
        "and *** at s3://lake/wh as AKIA1")


def test_meltano_run_takes_the_catalog_from_environment_variables(
    postgres: PostgresServer, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo job under `meltano run`, its catalog given only by Meltano's variables
    for the declared catalog.* settings: PostgreSQL catalog, S3 warehouse."""
    from tests.e2e.test_meltano_run import VALID_CUSTOMER_IDS, copy_project, meltano

    project = copy_project(tmp_path / "project")
    password = f"pg-secret-{uuid.uuid4().hex}"
    bucket = s3.create_bucket(f"meltano-{uuid.uuid4().hex[:8]}")
    props = {"type": "sql", "uri": postgres_uri(postgres, password),
             "warehouse": f"s3://{bucket}/lake", **s3.catalog_properties()}
    for key, value in {"name": "lake", **props}.items():
        variable = "TARGET_DATIVO_ICEBERG_CATALOG_" + key.upper().replace(".", "_").replace(
            "-", "_")
        monkeypatch.setenv(variable, value)

    result = meltano(project, "run", "tap-dativo-csv", "target-dativo-iceberg")

    catalog = load_catalog("lake", **props)
    customers = catalog.load_table(("demo", "crm", "customers")).scan().to_arrow()
    assert sorted(customers.column("customer_id").to_pylist()) == VALID_CUSTOMER_IDS
    dead = catalog.load_table(("demo", "crm", "customers__dead_letter")).scan().to_arrow()
    assert dead.num_rows == 4
    assert catalog.load_table(("demo", "default", "orders")).scan().to_arrow().num_rows > 0
    objects = s3.list_objects(bucket)
    assert any(o.startswith("lake/demo.crm/customers/data/") for o in objects)
    assert any(o.startswith("lake/demo.crm/customers__dead_letter/data/") for o in objects)
    assert not (project / "output").exists()
    for secret in (password, s3.secret_key):
        assert secret not in result.stdout
        assert secret not in result.stderr


@pytest.mark.parametrize("route", ["aws", "pyiceberg"])
def test_s3_credentials_from_the_environment(
    route: str, request: pytest.FixtureRequest, tmp_path: Path, s3: S3Server,
    target_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys kept out of the config: AWS's standard variables (the endpoint stays a
    catalog property), or pyiceberg's PYICEBERG_CATALOG__<NAME>__* for any property."""
    backend = make_backend("postgres-s3", request, tmp_path)
    props = {k: v for k, v in backend.props.items()
             if k not in ("s3.access-key-id", "s3.secret-access-key")}
    if route == "aws":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    else:
        prefix = f"PYICEBERG_CATALOG__{props['name'].upper()}__S3__"
        monkeypatch.setenv(prefix + "ACCESS_KEY_ID", s3.access_key)
        monkeypatch.setenv(prefix + "SECRET_ACCESS_KEY", s3.secret_key)
    result = run_target(target_config(catalog=props),
                        singer_lines([SCHEMA, record(1), record(2), state(2)]))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [{"bookmarks": {"users": {"id": 2}}}]
    table = backend.open().load_table(USERS)
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2]
    assert_no_secret(result, backend.secrets)
