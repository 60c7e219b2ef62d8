"""MySQL rows of ``make bench``: one N-row table of mixed types in a throwaway MariaDB,
read FULL_TABLE by tap-dativo-mysql (RECORDs, Parquet BATCH files, and piped into
target-dativo-iceberg), by a PyMySQL floor, and by the peers ``tap-mysql`` (singer-io)
and ``meltanolabs-tap-mysql`` from PyPI, each installed on first use into a venv of its
own under bench/.work/.

The table mixes the types issue 15 names (bigint key, unsigned bigint near 2^64-1,
int, decimal(12,2), double, utf8mb4 varchar with accents and an emoji, datetime(6),
date, json, tinyint(1)); MariaDB's sequence engine generates the rows on the server, so
1M rows take seconds and no data file is shipped. Loading is not timed, nor is any
tap's discovery.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench import TENANT, WORK_DIR
from bench.measure import count_table_rows, measure
from bench.postgres_tap import batch_settings, count_batch_rows, count_records
from tests.services.mariadb import MariaDBServer, running_mariadb

if TYPE_CHECKING:
    from bench.report import Result

DATABASE = "bench"
STREAM = "bench-bench_rows"
ONE_ROW_STREAM = "bench-bench_one"  # the same columns, one row: the fixed cost
LARGE_STREAM = "bench-bench_large"  # the same columns, LARGE_FACTOR times the rows
LARGE_FACTOR = 10
TABLE_SQL = """
SET SESSION sql_log_bin = 0;
CREATE TABLE bench_rows (
  id bigint PRIMARY KEY, big_u bigint unsigned NOT NULL, qty int, amount decimal(12,2),
  score double, name varchar(64), created_at datetime(6) NOT NULL, day date, attrs json,
  active tinyint(1)) ENGINE=InnoDB;
INSERT INTO bench_rows
SELECT g, 18446744073709551615 - g, g % 100000 - 50000, (g % 100000) / 100, g / 7e0,
       CASE WHEN g % 10 = 0 THEN NULL WHEN g % 10 = 1 THEN CONCAT('Zoë Ünal ', g, ' 😀')
            ELSE CONCAT('user-', g) END,
       TIMESTAMP'2024-01-01 00:00:00' + INTERVAL g SECOND + INTERVAL g % 1000000 MICROSECOND,
       DATE'2020-01-01' + INTERVAL g % 3000 DAY,
       JSON_OBJECT('plan', CONCAT('p', g % 5), 'score', g % 1000), g % 2
FROM (SELECT CAST(seq AS SIGNED) AS g FROM seq_1_to_{records}) AS s;
CREATE TABLE bench_one LIKE bench_rows;
INSERT INTO bench_one SELECT * FROM bench_rows WHERE id = 1;
ANALYZE TABLE bench_rows, bench_one;
"""
LARGE_TABLE_SQL = """
SET SESSION sql_log_bin = 0;
CREATE TABLE bench_large LIKE bench_rows;
INSERT INTO bench_large
SELECT k.seq * {records} + r.id, r.big_u, r.qty, r.amount, r.score, r.name, r.created_at,
       r.day, r.attrs, r.active
FROM seq_0_to_{last} AS k, bench_rows AS r;
ANALYZE TABLE bench_large;
"""
# The floor: the driver every Python MySQL tap here uses, its unbuffered cursor, and one
# orjson line per row; no types, no Singer messages.
FLOOR_CODE = """\
import sys, orjson, pymysql, pymysql.cursors
host, port, user, password, database, table = sys.argv[1:7]
conn = pymysql.connect(host=host, port=int(port), user=user, password=password,
                       database=database, charset="utf8mb4",
                       cursorclass=pymysql.cursors.SSCursor)
out = sys.stdout.buffer
with conn.cursor() as cur:
    cur.execute(f"SELECT * FROM `{table}`")
    names = [d[0] for d in cur.description]
    while rows := cur.fetchmany(10000):
        for row in rows:
            out.write(orjson.dumps(dict(zip(names, row)), default=str,
                                   option=orjson.OPT_APPEND_NEWLINE))
"""


@dataclass(frozen=True)
class Peer:
    """A MySQL tap from PyPI: its pinned package, its own venv and its config keys."""

    package: str
    venv: Path
    config: dict[str, object] = field(default_factory=dict)

    @property
    def executable(self) -> Path:
        return self.venv / "bin" / "tap-mysql"


PEERS = {
    # singer-io's tap (2023); connects with host/port/user/password/database, discovers
    # every database unless filter_dbs (a comma-separated string) says otherwise.
    "mysql_peer_singer": Peer("tap-mysql==1.17.7", WORK_DIR / "peer-tap-mysql-singer",
                              {"filter_dbs": DATABASE}),
    # MeltanoLabs' singer-sdk tap (an alpha on singer-sdk 0.35, SQLAlchemy 1.4).
    "mysql_peer_meltanolabs": Peer("meltanolabs-tap-mysql==0.0.1a1",
                                   WORK_DIR / "peer-tap-mysql-meltanolabs",
                                   {"filter_schemas": [DATABASE]}),
}


class MySQLTapBench:
    """The server, the tables and each tap's config and catalog, made on first use."""

    def __init__(self, records: int, python: Path) -> None:
        self.records = records
        self.python = python
        self._stack = contextlib.ExitStack()
        self._server: MariaDBServer | None = None
        self._large_built = False

    def close(self) -> None:
        self._stack.close()

    @property
    def server(self) -> MariaDBServer:
        if self._server is None:
            print(f"    starting MariaDB, building a {self.records:,}-row table ...",
                  flush=True)
            server = self._stack.enter_context(running_mariadb())
            server.create_database(DATABASE)
            server.sql(TABLE_SQL.format(records=self.records), DATABASE)
            self._server = server
        return self._server

    def large_table(self) -> str:
        """``bench_large`` (LARGE_FACTOR x N rows), built on first use; its stream."""
        if not self._large_built:
            print(f"    building a {self.records * LARGE_FACTOR:,}-row table ...", flush=True)
            self.server.sql(LARGE_TABLE_SQL.format(records=self.records,
                                                   last=LARGE_FACTOR - 1), DATABASE)
            self._large_built = True
        return LARGE_STREAM

    def config(self) -> dict[str, object]:
        server = self.server
        return {"host": server.host, "port": server.port, "user": server.user,
                "password": server.password, "database": DATABASE}

    def floor_command(self, table: str = "bench_rows") -> list[str]:
        server = self.server
        return [sys.executable, "-c", FLOOR_CODE, server.host, str(server.port), server.user,
                server.password, DATABASE, table]

    def command(self, executable: Path, run_dir: Path, stream: str = STREAM,
                **settings: object) -> list[str]:
        """``executable --config --catalog``, with the catalog from its own discovery
        selecting only ``stream`` (every column, FULL_TABLE, which singer-io's tap
        needs spelled out); ``settings`` are added to the config."""
        config = run_dir / "tap-config.json"
        config.write_text(json.dumps({**self.config(), **settings}), encoding="utf-8")
        found = subprocess.run([str(executable), "--config", str(config), "--discover"],
                               capture_output=True, timeout=600)
        if found.returncode != 0:
            tail = found.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{executable} --discover failed:\n    " + "\n    ".join(tail))
        catalog = json.loads(found.stdout)
        catalog["streams"] = [s for s in catalog["streams"] if s["tap_stream_id"] == stream]
        if not catalog["streams"]:
            raise RuntimeError(f"{executable} did not discover {stream}")
        for item in catalog["streams"][0]["metadata"]:
            item["metadata"]["selected"] = True
            if not item["breadcrumb"]:
                item["metadata"]["replication-method"] = "FULL_TABLE"
        path = run_dir / "catalog.json"
        path.write_text(json.dumps(catalog), encoding="utf-8")
        return [str(executable), "--config", str(config), "--catalog", str(path)]

    def peer_executable(self, peer: Peer) -> Path:
        """The peer's console script, installed on first use into its own venv.

        Raises:
            RuntimeError: The package does not install (or its script does not start)
                on this Python; the message names the package, the Python and pip's or
                the script's last lines, and the bench row reports it as FAILED.
        """
        if not peer.executable.exists():
            print(f"    installing {peer.package} into {peer.venv} ...", flush=True)
            subprocess.run([str(self.python), "-m", "venv", "--clear", str(peer.venv)],
                           check=True)
            installed = subprocess.run(
                [str(peer.venv / "bin" / "pip"), "install", "-q",
                 "--disable-pip-version-check", peer.package], capture_output=True, text=True)
            if installed.returncode != 0 or not peer.executable.exists():
                raise RuntimeError(self._peer_failure(peer, "does not install", installed))
        started = subprocess.run([str(peer.executable), "--help"], capture_output=True,
                                 text=True, timeout=120)
        if started.returncode != 0:
            raise RuntimeError(self._peer_failure(peer, "does not start", started))
        return peer.executable

    @staticmethod
    def _peer_failure(peer: Peer, what: str,
                      proc: subprocess.CompletedProcess[str]) -> str:
        lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines()
                 if ln.strip() and not ln.startswith("WARNING: Location")][-6:]
        return (f"{peer.package} {what} on Python {platform.python_version()} "
                f"(venv {peer.venv}):\n    " + "\n    ".join(lines))


class MySQLRuns:
    """The MySQL rows of :class:`bench.run.Bench` (mixed in, so ``--runs`` finds them by
    name); each run gets a fresh directory and writes its output there."""

    bin: Path
    env: dict[str, str]
    timeout: float
    records: int
    mysql: MySQLTapBench

    def _dir(self, key: str) -> Path:  # provided by Bench
        raise NotImplementedError

    def _target(self, run_dir: Path, **settings: object) -> list[str]:  # provided by Bench
        raise NotImplementedError

    def _measure(self, result: Result, cmd: list[str], run_dir: Path) -> None:
        result.seconds, result.peak_rss = measure(
            cmd, stdin=None, run_dir=run_dir, env=self.env, timeout=self.timeout)

    def mysql_floor(self, result: Result) -> None:
        """PyMySQL's unbuffered cursor, one orjson line per row, to a file."""
        run_dir = self._dir("mysql-floor")
        self._measure(result, self.mysql.floor_command(), run_dir)
        with (run_dir / "stdout.log").open("rb") as handle:
            result.rows = sum(1 for _ in handle)

    def mysql_tap(self, result: Result) -> None:
        """tap-dativo-mysql FULL_TABLE, RECORDs to a file."""
        run_dir = self._dir("mysql-tap")
        self._measure(result, self.mysql.command(self.bin / "tap-dativo-mysql", run_dir),
                      run_dir)
        result.rows = count_records(run_dir / "stdout.log")

    def mysql_batch(self, result: Result, stream: str = STREAM) -> None:
        """tap-dativo-mysql with ``batch_config`` Parquet: whichever path the tap takes
        (its RECORD path into Parquet files, or a columnar fast path), rows are counted
        from the files' footers."""
        run_dir = self._dir("mysql-batch")
        cmd = self.mysql.command(self.bin / "tap-dativo-mysql", run_dir, stream,
                                 **batch_settings(run_dir))
        self._measure(result, cmd, run_dir)
        result.rows = count_batch_rows(run_dir)

    def mysql_batch_p2(self, result: Result) -> None:
        """The BATCH row read in two primary-key ranges at once (``partitions: 2``)."""
        run_dir = self._dir("mysql-batch-p2")
        cmd = self.mysql.command(self.bin / "tap-dativo-mysql", run_dir, STREAM,
                                 partitions=2, **batch_settings(run_dir))
        self._measure(result, cmd, run_dir)
        result.rows = count_batch_rows(run_dir)

    def mysql_batch_large(self, result: Result) -> None:
        """The BATCH row on a table 10x larger: its peak RSS must stay flat."""
        result.expected_rows = self.records * LARGE_FACTOR
        self.mysql_batch(result, self.mysql.large_table())

    def mysql_peer_singer(self, result: Result) -> None:
        self._peer(result, "mysql_peer_singer")

    def mysql_peer_meltanolabs(self, result: Result) -> None:
        self._peer(result, "mysql_peer_meltanolabs")

    def _peer(self, result: Result, key: str) -> None:
        peer = PEERS[key]
        run_dir = self._dir(key.replace("_", "-"))
        cmd = self.mysql.command(self.mysql.peer_executable(peer), run_dir, **peer.config)
        self._measure(result, cmd, run_dir)
        result.rows = count_records(run_dir / "stdout.log")

    def mysql_iceberg_one(self, result: Result) -> None:
        result.expected_rows = 1
        self.mysql_iceberg(result, ONE_ROW_STREAM)

    def mysql_iceberg(self, result: Result, stream: str = STREAM) -> None:
        """``tap-dativo-mysql | target-dativo-iceberg`` over an OS pipe, BATCH Parquet
        in between: from the table to committed Iceberg rows."""
        run_dir = self._dir("mysql-iceberg")
        tap = self.mysql.command(self.bin / "tap-dativo-mysql", run_dir, stream,
                                 **batch_settings(run_dir))
        pipeline = f"set -o pipefail; {shlex.join(tap)} | {shlex.join(self._target(run_dir))}"
        self._measure(result, ["bash", "-c", pipeline], run_dir)
        result.rows = count_table_rows(run_dir, (TENANT, "default", stream.replace("-", "_")))


if __name__ == "__main__":  # pragma: no cover - a manual look at one table
    bench = MySQLTapBench(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, Path(sys.executable))
    try:
        print(json.dumps(bench.config()))
        print(bench.server.sql("SELECT * FROM bench_rows ORDER BY id LIMIT 3", DATABASE))
    finally:
        bench.close()
