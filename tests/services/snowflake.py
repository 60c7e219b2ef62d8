"""A throwaway Snowflake: fakesnow's server (DuckDB behind Snowflake's HTTP protocol) in
its own process on a free loopback port, that the real ``snowflake-connector-python``
talks to over HTTP (``host``/``port``/``protocol: http``), with logins checked
(:mod:`tests.services.fakesnow_server`). docs/tap-snowflake.md lists what it does not
emulate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.services.ports import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
USER = "dativo"
PASSWORD = "dativo-snowflake-secret"
KEY_USER = "dativo_key"  # logs in with key-pair auth only
KEY_PASSPHRASE = "dativo-key-passphrase"


@dataclass(frozen=True)
class SnowflakeServer:
    host: str
    port: int
    user: str
    password: str
    key_user: str
    private_key_pem: bytes  # PKCS#8, encrypted with KEY_PASSPHRASE

    def tap_config(self, **overrides: Any) -> dict[str, Any]:
        """tap-dativo-snowflake's connection settings for this server."""
        return {"account": "dativo-test", "user": self.user, "password": self.password,
                "host": self.host, "port": self.port, "protocol": "http",
                "login_timeout": 10, **overrides}

    def connect(self, database: str | None = None) -> Any:
        import snowflake.connector

        return snowflake.connector.connect(
            account="dativo-test", user=self.user, password=self.password,
            host=self.host, port=self.port, protocol="http", database=database,
            login_timeout=10, network_timeout=30,
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False})

    def sql(self, statements: Sequence[str] | str, database: str | None = None) -> list[Any]:
        """Run statements (``%s`` free) in one session; the rows of the last one if it
        is a query. DML results are not fetched: fakesnow's server reports the rows
        changed as the result's row count, which connector 4.8 refuses as an incomplete
        result."""
        rows: list[Any] = []
        with self.connect(database) as conn, conn.cursor() as cursor:
            for statement in [statements] if isinstance(statements, str) else statements:
                cursor.execute(statement)
                query = statement.lstrip().split(None, 1)[0].upper() in ("SELECT", "SHOW")
                rows = cursor.fetchall() if query else []
        return rows

    def create_database(self, name: str, schemas: Sequence[str] = ("SALES",)) -> None:
        self.sql([f"CREATE OR REPLACE DATABASE {name}",
                  *(f"CREATE SCHEMA {name}.{schema}" for schema in schemas)])


@contextmanager
def running_snowflake(password: str = PASSWORD) -> Iterator[SnowflakeServer]:
    """The server, its user ``USER`` logging in with ``password``, ``KEY_USER`` with the
    yielded private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSPHRASE.encode()))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    root = Path(tempfile.mkdtemp(prefix="dativo-fakesnow-"))
    users = root / "users.json"
    users.write_text(json.dumps({USER: {"password": password},
                                 KEY_USER: {"public_key": public}}))
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.services.fakesnow_server", str(port), str(users)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        wait_for_port(port, what="fakesnow server")
        yield SnowflakeServer(host="127.0.0.1", port=port, user=USER, password=password,
                              key_user=KEY_USER, private_key_pem=private)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
