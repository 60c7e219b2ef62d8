"""A throwaway MariaDB server: mariadb-install-db in a temp folder, a ROW binlog, a free port.

Runs as the ``mysql`` user when the tests run as root. Never the machine's own server
(ARCHITECTURE.md, "Real services in tests"): its own datadir, socket and port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.services.ports import free_port, wait_for_port

USER = "dativo"
PASSWORD = "dativo-test-secret"


@dataclass(frozen=True)
class MariaDBServer:
    host: str
    port: int
    user: str
    password: str
    socket: Path

    def sqlalchemy_url(self, database: str) -> str:
        return (f"mysql+pymysql://{self.user}:{self.password}@{self.host}:{self.port}/"
                f"{database}?charset=utf8mb4")

    def create_database(self, name: str) -> str:
        """A fresh utf8mb4 database; returns its SQLAlchemy URL."""
        self.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return self.sqlalchemy_url(name)

    def sql(self, sql: str, database: str | None = None) -> str:
        """Run statements as root over the server's own socket; tab-separated output."""
        argv = [_bin("mariadb"), "--no-defaults", f"--socket={self.socket}", "-uroot",
                "--default-character-set=utf8mb4", "-N", "-B", "-e", sql]
        if database:
            argv.append(database)
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"mariadb failed: {result.stderr.strip()}")
        return result.stdout


def _bin(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"MariaDB's {name} is not installed; `.ci/run` installs the "
                           "Debian package mariadb-server")
    return path


def _user_args() -> list[str]:
    return ["--user=mysql"] if os.geteuid() == 0 else []


@contextmanager
def running_mariadb(log_bin: bool = True) -> Iterator[MariaDBServer]:
    """A started server with a password user ``dativo`` (all rights) and no anonymous users;
    ``log_bin=False`` starts it without a binary log (LOG_BASED's error).

    Raises:
        RuntimeError: A binary is missing, or the server does not start (its log is quoted).
    """
    install, server_bin = _bin("mariadb-install-db"), _bin("mariadbd")
    root = Path(tempfile.mkdtemp(prefix="dativo-mariadb-"))
    data, sock, log = root / "data", root / "s.sock", root / "error.log"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "mysql", "mysql")
    subprocess.run([install, "--no-defaults", *_user_args(), f"--datadir={data}",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True)
    proc = subprocess.Popen(
        [server_bin, "--no-defaults", *_user_args(), f"--datadir={data}", f"--socket={sock}",
         "--bind-address=127.0.0.1", f"--port={port}",
         *([f"--log-bin={root}/binlog"] if log_bin else []),
         "--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id=1",
         f"--log-error={log}", "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0",
         "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            wait_for_port(port, timeout=30, what="MariaDB")
        except RuntimeError as exc:
            text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{exc}; its log:\n{text}") from None
        server = MariaDBServer(host="127.0.0.1", port=port, user=USER, password=PASSWORD,
                               socket=sock)
        grants = "".join(f"CREATE USER '{USER}'@'{h}' IDENTIFIED BY '{PASSWORD}'; "
                         f"GRANT ALL ON *.* TO '{USER}'@'{h}'; "
                         for h in ("localhost", "127.0.0.1"))
        server.sql("DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES; " + grants)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
