"""The one place an exception becomes what a command prints and its exit code.

Every command (each tap, the target, ``dativo``) ends a failure the same way, with
:func:`exit_on_error`: one line and exit code :data:`USER_ERROR` (2) for a
:class:`~dativo.errors.DativoError` or a known third-party family (:data:`SDK_FAILURES`,
:data:`SOURCE_FAILURES`, a missing optional package); one ``unexpected`` line and
:data:`BUG` (1) for anything else, an escaped
:class:`~dativo.errors.InternalError` included. A failure that the same run, unchanged,
may get past later (a source down or timing out, a commit conflict that outlasted the
writer's retries) exits :data:`RETRIABLE` (75, sysexits' EX_TEMPFAIL) with the same
line, so an orchestrator knows what to retry without reading logs: :data:`RETRY` is the
one table of what is transient and what is not. The traceback is only added in debug
mode, and every line is redacted (:mod:`dativo.logs`): by the log handlers for the
plugins, here for ``dativo``'s stderr.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import click

from dativo.errors import DativoError, InternalError
from dativo.logs import redact

USER_ERROR = 2
"""Needs a human to change config, data, contract or credentials: never retried."""
BUG = 1
"""An unexpected exception: never retried."""
RETRIABLE = 75
"""sysexits EX_TEMPFAIL: the same run, unchanged, may succeed later."""
RERUN = "a rerun starts again from the last STATE"
_DATABASE = ("the source database failed", "check that the server is up and reachable and "
             "the connection settings (host, port, user, password, database, sslmode or "
             f"sqlalchemy_url); {RERUN}")
_HTTP = ("an HTTP request failed", f"check api_base and the network; {RERUN}")
_API = ("the API refused the request", f"check the credentials and the selection; {RERUN}")
Families = Mapping[tuple[str, str], tuple[str, str]]
SDK_FAILURES: Families = {
    ("singer_sdk.exceptions", "ConfigurationError"): ("the config is invalid",
                                                      "fix the setting named above"),
}
"""singer-sdk's own config errors (its stream-map and flattening checks): every plugin's."""
SOURCE_FAILURES: Families = {
    ("sqlalchemy.exc", "DBAPIError"): _DATABASE,
    ("psycopg2", "Error"): _DATABASE,
    ("adbc_driver_manager", "Error"): _DATABASE,
    ("requests.exceptions", "RequestException"): _HTTP,
    ("urllib3.exceptions", "HTTPError"): _HTTP,
    ("stripe._error", "StripeError"): _API,
    ("singer_sdk.exceptions", "FatalAPIError"): _API,
    ("singer_sdk.exceptions", "RetriableAPIError"): _API,
    ("google.auth.exceptions", "RefreshError"): (
        "Google refused the credentials", "check service_account_key or client_id, "
        "client_secret and refresh_token; re-authorize if the token was revoked"),
}
"""What a tap's source raises that a user can act on: (module, class; subclasses
included) -> what failed, what to check. Matched by name, so no driver is imported that
the tap does not use."""
KNOWN_FAILURES: Families = {**SOURCE_FAILURES, **SDK_FAILURES}
"""The families the taps report as user errors."""
RETRY: Mapping[tuple[str, str], bool] = {
    # transient: the same run may succeed later
    ("dativo.errors", "CommitConflictError"): True,  # concurrent writers outlasted the retries
    ("dativo.errors", "SourceUnavailableError"): True,  # a tap could not reach its database
    ("pyiceberg.exceptions", "CommitFailedException"): True,  # a commit lost a race
    ("dativo.resilience", "ApiUnavailableError"): True,  # retries exhausted, circuit open
    ("singer_sdk.exceptions", "RetriableAPIError"): True,  # a 429/5xx after singer-sdk's retries
    ("sqlalchemy.exc", "OperationalError"): True,  # connection refused or closed, locked
    ("psycopg2", "OperationalError"): True,
    ("pymysql.err", "OperationalError"): True,
    ("adbc_driver_manager", "OperationalError"): True,
    ("requests.exceptions", "ConnectionError"): True,
    ("requests.exceptions", "Timeout"): True,
    ("urllib3.exceptions", "TimeoutError"): True,
    ("urllib3.exceptions", "ProtocolError"): True,  # the connection broke off
    ("stripe._error", "APIConnectionError"): True,
    ("stripe._error", "RateLimitError"): True,
    ("builtins", "ConnectionError"): True,  # an OSError of the network, unlike a missing file
    ("builtins", "TimeoutError"): True,
    ("google.auth.exceptions", "TransportError"): True,  # the token endpoint unreachable
    # permanent: a human must change something, however often it is rerun
    ("dativo.errors", "ConfigError"): False,  # FatalApiError (401/403/404) included
    ("dativo.errors", "CodecError"): False,
    ("dativo.errors", "ContractViolation"): False,
    ("dativo.errors", "QualityError"): False,
    ("singer_sdk.exceptions", "FatalAPIError"): False,
    ("google.auth.exceptions", "RefreshError"): False,  # revoked token, wrong key
}
"""Is a rerun of the same run worth it: (module, class; subclasses included) -> retriable.
Looked up by name (no driver is imported) along the exception's MRO, then along its
cause chain (``raise ... from exc``, or the exception being handled when it was raised):
the first entry found decides, none found means permanent. So a
:class:`~dativo.errors.CommitError` caused by a lost connection is transient, one caused
by a missing file permanent; a ``ConfigError`` is permanent whatever caused it. An
HTTP error with a 429 or 5xx response is transient too (:func:`retriable`)."""
REFUSALS = (
    "password authentication failed", "access denied", "command denied",
    "permission denied", "no pg_hba.conf entry",
    "does not exist", "unknown database", "does not support ssl", "ssl connection error",
    "could not translate host name", "name or service not known", "unknown mysql server host")
"""Drivers raise a refused login or privilege (MySQL's ``SHOW command denied``), a missing
database, a TLS mismatch or an unknown host like a refused connection
(``OperationalError``): one whose text says so is permanent."""
Report = Callable[[str, BaseException], None]
"""Prints a failure's line, and in debug mode the exception's traceback."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What a command makes of an exception."""

    line: str
    exit_code: int

    @property
    def retriable(self) -> bool:
        """The same run, unchanged, may succeed later (exit code :data:`RETRIABLE`)."""
        return self.exit_code == RETRIABLE


def describe(exc: BaseException, *, hint: str, families: Families | None = None,
             extras: Mapping[str, str] | None = None) -> Failure:
    """The line and exit code for ``exc``.

    Args:
        exc: What the command raised.
        hint: Ends the line of an unexpected exception: how to get its traceback.
        families: Third-party exception families that are user errors.
        extras: Optional top-level modules -> the ``pip install`` argument providing them.
    """
    failure = _described(exc, hint=hint, families=families, extras=extras)
    if not isinstance(exc, InternalError) and retriable(exc):
        return Failure(failure.line, RETRIABLE)
    return failure


def _described(exc: BaseException, *, hint: str, families: Families | None,
               extras: Mapping[str, str] | None) -> Failure:
    if isinstance(exc, DativoError) and not isinstance(exc, InternalError):
        return Failure(str(exc), USER_ERROR)
    for cls in type(exc).__mro__:
        found = (families or {}).get((cls.__module__, cls.__name__))
        if found is not None:
            what, check = found
            return Failure(f"{what}: {first_line(exc)} ({type(exc).__name__}); {check}",
                           USER_ERROR)
    if isinstance(exc, ModuleNotFoundError) and extras:
        extra = extras.get((exc.name or "").split(".")[0])
        if extra is not None:
            return Failure(f"this command needs {exc.name}, which is not installed; "
                           f"pip install '{extra}'", USER_ERROR)
    return Failure(f"unexpected {type(exc).__name__}: {first_line(exc)}; {hint}", BUG)


def retriable(exc: BaseException) -> bool:
    """Whether a rerun of the same run may succeed: :data:`RETRY` along ``exc``'s MRO,
    then along its cause chain; an HTTP response of 429 or 5xx is transient, and a
    refused login or privilege (:data:`REFUSALS`) permanent."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _verdict(current)
        if verdict is not None:
            return verdict
        current = current.__cause__ or current.__context__
    return False


def _verdict(exc: BaseException) -> bool | None:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    for cls in type(exc).__mro__:
        verdict = RETRY.get((cls.__module__, cls.__name__))
        if verdict is not None:
            if verdict and cls.__name__ == "OperationalError":
                text = str(getattr(exc, "orig", None) or exc).lower()
                return not any(marker in text for marker in REFUSALS)
            return verdict
    return None


def first_line(exc: BaseException) -> str:
    """The first line of the error's own text: SQLAlchemy wraps the driver's with the
    statement and a web link, singer-sdk's config errors keep theirs in ``errors``."""
    cause = getattr(exc, "orig", None) or exc
    errors = getattr(exc, "errors", None)
    text = "; ".join(map(str, errors)) if isinstance(errors, (list, tuple)) and errors \
        else str(cause)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


@contextmanager
def exit_on_error(report: Report, *, hint: str, families: Families | None = None,
                  extras: Mapping[str, str] | None = None,
                  on_failure: Callable[[Failure], None] | None = None) -> Iterator[None]:
    """Report any exception of the block with ``report`` (see :func:`describe` for the
    arguments), tell ``on_failure`` (the run report, :mod:`dativo.run_report`) and exit
    with its code.

    click's control flow (``ctx.exit()`` after ``--discover``) and usage errors pass
    through, as do ``SystemExit`` and ``KeyboardInterrupt``.
    """
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort):
        raise
    except Exception as exc:
        failure = describe(exc, hint=hint, families=families, extras=extras)
        report(failure.line, exc)
        if on_failure is not None:
            on_failure(failure)
        sys.exit(failure.exit_code)


def logged(logger: logging.Logger) -> Report:
    """Report as one ERROR record of ``logger`` (the root handlers redact it), with the
    traceback when ``logger`` is at DEBUG (``LOGLEVEL=DEBUG``)."""

    def report(line: str, exc: BaseException) -> None:
        logger.error("%s", line, exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None)

    return report


def echoed(debug: bool) -> Report:
    """Report on stderr as ``error: <line>``, after the traceback if ``debug``; both
    redacted (the secrets :func:`dativo.logs.register_secrets` learnt, such as a
    catalog's, and key-shaped strings)."""

    def report(line: str, exc: BaseException) -> None:
        if debug:
            click.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)
        click.echo(f"error: {redact(line)}", err=True)

    return report
