"""Exit code 75 for what a rerun may get past (dativo.exit_codes.RETRY), and the run
report file (dativo.run_report)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import google.auth.exceptions
import orjson
import psycopg2
import pymysql
import pytest
import requests
import singer_sdk.exceptions
import sqlalchemy.exc
import stripe
import urllib3.exceptions
from pyiceberg.exceptions import CommitFailedException

from dativo.errors import (
    CodecError,
    CommitConflictError,
    CommitError,
    ConfigError,
    ContractViolation,
    DativoError,
    QualityError,
    SourceUnavailableError,
)
from dativo.exit_codes import BUG, KNOWN_FAILURES, RETRIABLE, RETRY, USER_ERROR, describe
from dativo.resilience import (
    CircuitOpenError,
    FatalApiError,
    RetriesExhaustedError,
    TransientFailure,
)
from dativo.run_report import ENV_VAR, write_report


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    """``exc`` as raised ``from cause``."""
    exc.__cause__ = cause
    return exc


def translated(exc: BaseException, handled: BaseException) -> BaseException:
    """``exc`` as raised ``from None`` while ``handled`` was handled (the taps do so)."""
    exc.__context__, exc.__suppress_context__ = handled, True
    return exc


def http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


def sa_operational(text: str) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(text))


VIOLATION = ContractViolation("s", rejected=1, received=1, line=2, record="", reasons=["id"],
                              dead_letter="t__dead_letter", others={})
CASES: list[tuple[BaseException, int]] = [
    # transient
    (CommitConflictError("commit to a.b.c still conflicted"), RETRIABLE),
    (caused(CommitError("x"), CommitFailedException("lost a race")), RETRIABLE),
    (caused(CommitError("x"), ConnectionResetError("reset by peer")), RETRIABLE),
    (RetriesExhaustedError("kept failing"), RETRIABLE),
    (SourceUnavailableError("cannot connect to postgresql://u:***@h/d"), RETRIABLE),
    (CircuitOpenError("circuit open"), RETRIABLE),
    (singer_sdk.exceptions.RetriableAPIError("503"), RETRIABLE),
    (sa_operational("connection refused"), RETRIABLE),
    (psycopg2.OperationalError("server closed the connection unexpectedly"), RETRIABLE),
    (pymysql.err.OperationalError(2003, "Can't connect to MySQL server"), RETRIABLE),
    (requests.ConnectionError("refused"), RETRIABLE),
    (requests.Timeout("read timed out"), RETRIABLE),
    (google.auth.exceptions.TransportError("token endpoint unreachable"), RETRIABLE),
    (google.auth.exceptions.RefreshError("invalid_grant: Token has been revoked."),
     USER_ERROR),
    (http_error(503), RETRIABLE),
    (http_error(429), RETRIABLE),
    (urllib3.exceptions.ReadTimeoutError(None, "/x", "timed out"), RETRIABLE),
    (urllib3.exceptions.ProtocolError("connection aborted"), RETRIABLE),
    (stripe.APIConnectionError("network"), RETRIABLE),
    (stripe.RateLimitError("slow down"), RETRIABLE),
    (ConnectionRefusedError("refused"), RETRIABLE),
    (TimeoutError("timed out"), RETRIABLE),
    (translated(DativoError("stream 's': reading t failed"),
                psycopg2.OperationalError("terminating connection")), RETRIABLE),
    # permanent
    (caused(CommitError("x"), FileNotFoundError("no such file")), USER_ERROR),
    (CommitError("x"), USER_ERROR),
    (translated(ConfigError("cannot connect"), sa_operational("connection refused")),
     USER_ERROR),
    (FatalApiError("HTTP 401", status=401), USER_ERROR),
    (CodecError("not JSON", line=1), USER_ERROR),
    (VIOLATION, USER_ERROR),
    (QualityError("blocked", stream="s", table="t"), USER_ERROR),
    (singer_sdk.exceptions.FatalAPIError("404"), USER_ERROR),
    (sa_operational('FATAL:  password authentication failed for user "u"'), USER_ERROR),
    (sqlalchemy.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(
        1045, "Access denied for user 'u'")), USER_ERROR),
    (translated(DativoError("stream 's': reading t failed"), pymysql.err.OperationalError(
        1142, "SHOW command denied to user 'u'@'127.0.0.1' for table `t`")), USER_ERROR),
    (http_error(404), USER_ERROR),
    (stripe.AuthenticationError("bad key"), USER_ERROR),
    (translated(DativoError("stream 's': reading t failed"),
                psycopg2.ProgrammingError("permission denied")), USER_ERROR),
    # bugs stay bugs
    (TransientFailure("429", "GET /x"), BUG),
    (KeyError("x"), BUG),
]


@pytest.mark.parametrize(("exc", "code"), CASES, ids=lambda v: type(v).__name__
                         if isinstance(v, BaseException) else str(v))
def test_each_family_gets_its_exit_code_and_keeps_its_line(exc: BaseException,
                                                           code: int) -> None:
    failure = describe(exc, hint="hint", families=KNOWN_FAILURES)
    assert failure.exit_code == code
    assert failure.retriable is (code == RETRIABLE)
    assert "\n" not in failure.line and failure.line


def test_the_cases_cover_every_entry_of_the_table() -> None:
    covered = set()
    for exc, _ in CASES:
        chain: BaseException | None = exc
        while chain is not None:
            covered |= {(c.__module__, c.__name__) for c in type(chain).__mro__} & set(RETRY)
            chain = chain.__cause__ or chain.__context__
    assert set(RETRY) - covered == {("adbc_driver_manager", "OperationalError")}


def test_every_entry_of_the_table_exists() -> None:
    """A typo would silently make that family permanent."""
    for module, name in RETRY:
        family = getattr(importlib.import_module(module), name)
        assert isinstance(family, type) and issubclass(family, BaseException), (module, name)


def test_the_line_stays_as_it_was() -> None:
    """Only the code changes: the line of a known family is the one it always was."""
    exc = sa_operational("connection refused")
    assert describe(exc, hint="h", families=KNOWN_FAILURES).line.startswith(
        "the source database failed: connection refused (OperationalError); check that")
    conflict = CommitConflictError("commit to a.b still conflicted")
    assert describe(conflict, hint="h").line == "commit to a.b still conflicted"


# -- the report file ------------------------------------------------------------------
def test_no_report_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert write_report("tap-x", "tap", 0, None, None) is None
    assert list(tmp_path.iterdir()) == []


def test_the_report_is_written_whole_and_redacted(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    path = write_report("tap-dativo-stripe", "tap", RETRIABLE,
                        "Stripe refused sk_live_abcdefgh12345678", {"records": {"a": 3}})
    assert path is not None and path.parent == tmp_path
    assert path.name.startswith("tap-dativo-stripe-") and path.suffix == ".json"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no .tmp left behind
    assert orjson.loads(path.read_bytes()) == {
        "plugin": "tap-dativo-stripe", "kind": "tap", "exit_code": 75, "retriable": True,
        "error": "Stripe refused ***", "summary": {"records": {"a": 3}}}


@pytest.mark.parametrize("where", ["missing/dir", "a-file/dir"])
def test_a_report_that_cannot_be_written_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    where: str,
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / where))
    with caplog.at_level(logging.WARNING):
        assert write_report("target-dativo-iceberg", "target", 0, None, {}) is None
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "could not be written" in warning.getMessage()
    assert ENV_VAR in warning.getMessage()
