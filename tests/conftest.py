"""Shared fixtures: real catalogs in temp folders, and the plugins run as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog, load_catalog

from tests.services.mariadb import MariaDBServer, running_mariadb
from tests.services.postgres import PostgresServer, running_postgres
from tests.services.pushgateway import running_pushgateway
from tests.services.s3 import S3Server, running_s3

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def singer_lines(messages: Iterable[dict[str, Any]]) -> bytes:
    """Messages as compact JSON lines, exactly as singer-sdk taps write them."""
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


@pytest.fixture
def catalog_props(tmp_path: Path) -> dict[str, str]:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    return {
        "name": "test",
        "type": "sql",
        "uri": f"sqlite:///{warehouse / 'catalog.db'}",
        "warehouse": warehouse.as_uri(),
    }


@pytest.fixture
def open_catalog(catalog_props: dict[str, str]) -> Callable[[], Catalog]:
    def _open() -> Catalog:
        props = dict(catalog_props)
        return load_catalog(props.pop("name"), **props)

    return _open


@pytest.fixture
def target_config(tmp_path: Path, catalog_props: dict[str, str]) -> Callable[..., Path]:
    """Write a target config file; keyword arguments override the defaults."""

    def _write(**overrides: Any) -> Path:
        config = {"tenant_id": "acme", "validation_mode": "warn", "catalog": catalog_props}
        config.update(overrides)
        path = tmp_path / f"target-{len(list(tmp_path.glob('target-*.json')))}.json"
        path.write_text(json.dumps(config))
        return path

    return _write


def run_target(config: Path, stdin: bytes, *, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(BIN / "target-dativo-iceberg"), "--config", str(config)],
        input=stdin, capture_output=True, timeout=timeout, cwd=cwd or REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def emitted_states(result: subprocess.CompletedProcess[bytes]) -> list[Any]:
    return [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]


def read_table(catalog: Catalog, identifier: tuple[str, ...]) -> pa.Table:
    return catalog.load_table(identifier).scan().to_arrow()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session; tests create their own databases."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """One throwaway MariaDB server for the session; tests create their own databases."""
    with running_mariadb() as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """One throwaway S3 server (SeaweedFS) for the session; tests create their own buckets."""
    with running_s3() as server:
        yield server


@pytest.fixture(scope="session")
def pushgateway() -> Iterator[str]:
    """A real Prometheus Pushgateway for the session (its URL)."""
    with running_pushgateway() as url:
        yield url
