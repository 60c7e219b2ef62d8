"""What every command prints for an exception, and its exit code (dativo.exit_codes)."""

from __future__ import annotations

import click
import pytest
import sqlalchemy.exc

from dativo.errors import CodecError, ConfigError
from dativo.exit_codes import (
    BUG,
    KNOWN_FAILURES,
    RETRIABLE,
    USER_ERROR,
    Failure,
    describe,
    echoed,
    exit_on_error,
)
from dativo.resilience import TransientFailure

HINT = "rerun with --debug"


@pytest.mark.parametrize(("exc", "expected"), [
    (ConfigError("catalog.uri: missing; set it"), Failure("catalog.uri: missing; set it", 2)),
    (CodecError("not JSON", line=3), Failure("line 3: not JSON", USER_ERROR)),
    # handled where raised, so one that escapes is a bug, not a user's mistake
    (TransientFailure("429", "GET /v1/charges"),
     Failure("unexpected TransientFailure: 429: GET /v1/charges; rerun with --debug", BUG)),
    (KeyError("x"), Failure("unexpected KeyError: 'x'; rerun with --debug", BUG)),
    (RuntimeError("first\nsecond"), Failure("unexpected RuntimeError: first; rerun with "
                                            "--debug", BUG)),
])
def test_our_errors_are_user_errors_anything_else_a_bug(
    exc: Exception, expected: Failure,
) -> None:
    assert describe(exc, hint=HINT, families=KNOWN_FAILURES) == expected


def test_a_known_family_names_what_failed_and_what_to_check() -> None:
    exc = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(
        "connection refused\n\tIs the server running?"))
    failure = describe(exc, hint=HINT, families=KNOWN_FAILURES)
    assert failure.exit_code == RETRIABLE  # a refused connection: the server may come back
    assert failure.line.startswith("the source database failed: connection refused "
                                   "(OperationalError); check that the server is up")
    refused = sqlalchemy.exc.ProgrammingError("SELECT 1", {}, Exception("permission denied"))
    assert describe(refused, hint=HINT, families=KNOWN_FAILURES).exit_code == USER_ERROR
    # a family only where it is listed
    assert describe(refused, hint=HINT).exit_code == BUG


def test_a_missing_optional_package_names_the_pip_install() -> None:
    missing = ModuleNotFoundError("No module named 'pyiceberg'", name="pyiceberg.catalog")
    assert describe(missing, hint=HINT, extras={"pyiceberg": "dativo-core[iceberg]"}) == (
        Failure("this command needs pyiceberg.catalog, which is not installed; "
                "pip install 'dativo-core[iceberg]'", USER_ERROR))
    other = ModuleNotFoundError("No module named 'yaml'", name="yaml")
    assert describe(other, hint=HINT, extras={"pyiceberg": "x"}).exit_code == BUG


def test_exit_on_error_reports_once_and_exits_with_the_code() -> None:
    reported: list[tuple[str, BaseException]] = []
    with pytest.raises(SystemExit) as exited, exit_on_error(
            lambda line, exc: reported.append((line, exc)), hint=HINT):
        raise ConfigError("bad")
    assert exited.value.code == USER_ERROR
    assert [line for line, _ in reported] == ["bad"]


def test_click_control_flow_passes_through() -> None:
    with pytest.raises(click.exceptions.Exit), exit_on_error(
            lambda line, exc: pytest.fail(line), hint=HINT):
        raise click.exceptions.Exit(0)


@pytest.mark.parametrize("debug", [False, True])
def test_the_stderr_line_is_redacted_and_the_traceback_only_in_debug(
    debug: bool, capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        raise ConfigError("cannot open postgresql://app:Hunter2-pw@db/x")
    except ConfigError as exc:
        echoed(debug)(str(exc), exc)
    err = capsys.readouterr().err
    assert err.endswith("error: cannot open postgresql://app:***@db/x\n")
    assert "Hunter2-pw" not in err
    assert ("Traceback" in err) is debug
