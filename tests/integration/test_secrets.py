"""Canary: a secret planted in the config never appears in any output or written file,
on success, on a config error, and in a DEBUG traceback."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class _EchoingCatalog(BaseHTTPRequestHandler):
    """A REST catalog that serves its config, then refuses every table with an error
    quoting the bearer token (as some servers do)."""

    def do_GET(self) -> None:
        if self.path.startswith("/v1/config"):
            self._answer(200, {"defaults": {}, "overrides": {}})
            return
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self._answer(401, {"error": {"message": f"the token {token} has expired",
                                     "type": "NotAuthorizedException", "code": 401}})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def echoing_catalog(tmp_path: Path) -> Iterator[Path]:
    """A target config whose REST catalog token the server quotes back in errors."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingCatalog)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = tmp_path / "config.json"
    config.write_text(orjson.dumps({"catalog": {
        "name": "rest", "type": "rest", "uri": f"http://127.0.0.1:{server.server_port}",
        "token": CANARY}}).decode())
    yield config
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("command", [
    ["table", "show", "demo.crm.customers"],
    ["--debug", "maintain", "compact", "demo.crm.customers"],
])
def test_the_dativo_command_masks_the_catalog_secrets_it_read(
    echoing_catalog: Path, command: list[str],
) -> None:
    """``dativo`` never configures logging: its error lines and tracebacks are masked
    with the catalog's secrets all the same."""
    args = [*command[:-1], "--config", str(echoing_catalog), command[-1]]
    result = subprocess.run([str(BIN / "dativo"), *args], capture_output=True,
                            timeout=120, cwd=REPO,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode != 0
    assert b"has expired" in result.stderr, result.stderr.decode()
    assert CANARY.encode() not in result.stdout + result.stderr
