"""A throwaway PostgreSQL cluster: initdb in a temp folder, logical WAL, a free port.

Runs as the ``postgres`` user when the tests run as root (PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.services.ports import free_port, wait_for_port


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    socket_dir: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def sqlalchemy_url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.sqlalchemy_url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
             "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            capture_output=True, text=True, check=True)
        return result.stdout


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed; `.ci/run` installs "
                           "the Debian package postgresql")
    return path


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in argv)]


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="dativo-pg-"))
    data = root / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(_as_server_user([_bin("initdb"), "-D", str(data), "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            f"\nlisten_addresses='127.0.0.1'\nport={port}\nunix_socket_directories='{root}'\n"
            "wal_level=logical\nmax_replication_slots=4\nmax_wal_senders=4\nfsync=off\n"
            "max_connections=100\n")
    subprocess.run(_as_server_user([_bin("pg_ctl"), "-D", str(data), "-w", "-l",
                                    str(root / "log"), "start"]),
                   check=True, capture_output=True)
    try:
        wait_for_port(port, what="PostgreSQL")
        yield PostgresServer(host="127.0.0.1", port=port, user="postgres", socket_dir=root)
    finally:
        subprocess.run(_as_server_user([_bin("pg_ctl"), "-D", str(data), "-m", "immediate",
                                        "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
