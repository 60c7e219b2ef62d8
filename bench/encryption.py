"""The encryption row of ``make bench`` (issue 19): the 1M-record pipe with two string
columns (``name``, ``email``) stored encrypted, against the same pipe in plaintext, in
one bench run.

Both runs feed the same events file to ``target-dativo-iceberg``; this one maps stream
``events`` to ``events_encrypted.odcs.yaml`` (the same columns, two of them
``classification: restricted``) and gives the target a key. The goal: at most 1.5x the
wall time of the plaintext run.

A fast run that stored plaintext would pass that goal, so the row also checks the
table: both columns hold tokens under the bench key, and a sample decrypts back to the
generated values.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bench import TABLE_IDENTIFIER
from bench.measure import count_rows, measure
from bench.paired import slowdown_checks

if TYPE_CHECKING:
    from bench.report import Result

ENCRYPTED_CONTRACT = "bench/perf/events_encrypted.odcs.yaml"  # under bench/contracts
COLUMNS = ("name", "email")
KEY_ID = "bench"
GOAL_ENCRYPTION_SLOWDOWN = 1.5  # wall time encrypted / plaintext, same run
LABEL = "target-dativo-iceberg (pipe, 2 string columns encrypted)"
OFF_KEY, ON_KEY = "target", "target_encrypted"
SAMPLE = 1000


def write_key(run_dir: Path) -> Path:
    """A fresh key file for the run (a ``file:`` reference, as a user would mount one)."""
    path = run_dir / "bench.key"
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


class EncryptionRuns:
    """``Bench``'s encryption row, a mixin as bench/quality_rules.py's ``QualityRuns``."""

    events: Path
    env: dict[str, str]
    timeout: float

    def _dir(self, key: str) -> Path:  # provided by Bench
        raise NotImplementedError

    def _target(self, run_dir: Path, **settings: object) -> list[str]:  # provided by Bench
        raise NotImplementedError

    def target_encrypted(self, result: Result) -> None:
        """The pipe of the ``target`` row with two columns encrypted."""
        run_dir = self._dir("target-encrypted")
        key = write_key(run_dir)
        cmd = self._target(run_dir, stream_contracts={"events": ENCRYPTED_CONTRACT},
                           encryption_keys={KEY_ID: f"file:{key}"})
        result.seconds, result.peak_rss = measure(
            cmd, stdin=self.events, run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows, result.dead_letter_rows = count_rows(run_dir)
        problem = encryption_problem(run_dir, key)
        if problem is not None:
            result.error = problem


def encryption_problem(warehouse: Path, key_file: Path) -> str | None:
    """Why ``bench.perf.events`` does not hold ``name`` and ``email`` as tokens that
    decrypt under the run's key, or None when it does."""
    import pyarrow.compute as pc
    from pyiceberg.catalog import load_catalog

    from dativo.crypto import ColumnCipher, Keyring

    catalog = load_catalog("bench", type="sql", uri=f"sqlite:///{warehouse / 'catalog.db'}",
                           warehouse=warehouse.as_uri())
    table = catalog.load_table(TABLE_IDENTIFIER)
    rows = table.scan(selected_fields=COLUMNS, limit=SAMPLE).to_arrow()
    cipher = ColumnCipher(Keyring(KEY_ID, {KEY_ID: base64.b64decode(key_file.read_text())}))
    for column in COLUMNS:
        values = rows.column(column)
        if not pc.all(pc.starts_with(values, f"dv1.{KEY_ID}.")).as_py():
            return f"{'.'.join(TABLE_IDENTIFIER)}.{column} is not stored encrypted"
        plain = cipher.decrypt(values)
        if column == "email" and not pc.all(pc.match_substring(plain, "@")).as_py():
            return f"{'.'.join(TABLE_IDENTIFIER)}.email does not decrypt to emails"
    return None


def encryption_checks(done: dict[str, Result]) -> list[str]:
    """The encrypted run against the plaintext run of the same bench run: wall time
    (the goal) and peak RSS (info)."""
    return slowdown_checks(done, OFF_KEY, ON_KEY, LABEL, GOAL_ENCRYPTION_SLOWDOWN,
                           ("the same pipe in plaintext", "the plaintext run"))
