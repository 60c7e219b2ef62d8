"""Canary: a secret planted in the config never appears in any output or written file,
on success, on a config error, and in a DEBUG traceback."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from dativo.logs import SecretRedactor, secret_values
from tests.conftest import BIN, REPO, singer_lines

CANARY = "Canary-Secret-7f3a9c"
SCHEMA = {"type": "SCHEMA", "stream": "users", "key_properties": ["id"],
          "schema": {"properties": {"id": {"type": "integer"}}}}


def run(config: Path, *, debug: bool = False) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if debug:
        env["LOGLEVEL"] = "DEBUG"
    lines = singer_lines([SCHEMA, {"type": "RECORD", "stream": "users", "record": {"id": 1}},
                          {"type": "STATE", "value": {"n": 1}}])
    return subprocess.run([str(BIN / "target-dativo-iceberg"), "--config", str(config)],
                          input=lines, capture_output=True, timeout=120, cwd=REPO, env=env)


def assert_nowhere(result: subprocess.CompletedProcess[bytes], root: Path) -> None:
    assert CANARY.encode() not in result.stdout + result.stderr
    leaked = [p for p in root.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()
              and not p.name.startswith("target-")]  # the config file itself
    assert leaked == []


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_successful_run_never_shows_the_secret(
    target_config: Callable[..., Path], catalog_props: dict[str, str], tmp_path: Path,
    log_format: str,
) -> None:
    catalog = {**catalog_props, "s3.secret-access-key": CANARY, "token": CANARY}
    result = run(target_config(catalog=catalog, log_format=log_format,
                               audit_log_path=str(tmp_path / "audit.jsonl"),
                               metrics={"textfile_dir": str(tmp_path)}), debug=True)
    assert result.returncode == 0, result.stderr.decode()
    assert_nowhere(result, tmp_path)
    if log_format == "json":
        records = [orjson.loads(x) for x in result.stderr.splitlines() if x.startswith(b"{")]
        assert any("Run summary" in r["message"] for r in records)


def test_an_error_quoting_the_secret_is_redacted_even_in_the_debug_traceback(
    target_config: Callable[..., Path], tmp_path: Path,
) -> None:
    """An unreachable REST catalog whose URI carries a password: pyiceberg's own error
    text quotes the URI."""
    catalog = {"name": "rest", "type": "rest",
               "uri": f"http://admin:{CANARY}@127.0.0.1:9/catalog", "credential": CANARY}
    result = run(target_config(catalog=catalog), debug=True)
    assert result.returncode == 2
    assert b"catalog: cannot load catalog 'rest'" in result.stderr
    assert b"Traceback" in result.stderr  # DEBUG shows it, redacted
    assert_nowhere(result, tmp_path)


def test_redaction_rules() -> None:
    config = {"catalog": {"uri": "postgresql://u:p%40ss@h/db", "s3.secret-access-key": "abcd1234"},
              "api_key": "sk_live_abcdefgh12345678", "plain": "visible"}
    redactor = SecretRedactor(secret_values(config))
    text = ("postgresql://u:p%40ss@h/db p@ss abcd1234 sk_live_abcdefgh12345678 "
            "Authorization: Bearer eyJabc.def password=hunter22 visible "
            "pat-na1-0123abcd-4567-89ab-cdef-0123456789ab")
    assert redactor.redact(text) == (
        "postgresql://u:***@h/db *** *** *** Authorization: Bearer *** password=*** "
        "visible ***")
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed with %s", ("abcd1234",),
                               None)
    redactor.filter(record)
    assert record.getMessage() == "failed with ***"
