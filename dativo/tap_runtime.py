"""What every dativo tap adds to singer-sdk: clean errors, redacted logs, metrics.

Mix :class:`ObservedTap` in before ``singer_sdk.Tap``. Every failure is one ERROR line
in every entry point (sync, ``--discover``, ``--test``): a :class:`DativoError` (bad
config, bad input, an API refusing) and the known third-party families (database
driver, HTTP client and singer-sdk errors; see :func:`known_failure`) exit 2, anything
else (a bug) exits 1; the traceback is only added at ``LOGLEVEL=DEBUG``. Config
validation names the key and what it expects, never a secret value
(:mod:`dativo.schema_messages`). Secrets (settings marked secret, passwords in DSNs,
key-shaped strings) are masked in every log line from before the config is validated;
RECORD messages are counted per stream as they are written, and logged as progress
lines (rows, rows/s per stream) every ``progress_interval_seconds`` and at the end (see
:mod:`dativo.progress`); and the run's metrics are exported at the end (see
:mod:`dativo.metrics`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click
from singer_sdk import typing as th
from singer_sdk.helpers._batch import DEFAULT_BATCH_SIZE

from dativo import logs, metrics
from dativo.errors import DativoError
from dativo.metrics import MetricsSettings, RunMetrics
from dativo.progress import DEFAULT_INTERVAL_SECONDS, ProgressReporter
from dativo.schema_messages import validate_config

if TYPE_CHECKING:
    from prometheus_client import Counter as _Counter

OBSERVABILITY_SETTINGS = th.PropertiesList(
    th.Property("tenant_id", th.StringType,
                description="Tenant label on this tap's metrics (default 'default')."),
    th.Property("log_format", th.StringType, default="text", allowed_values=["text", "json"],
                description="text for humans, json for log pipelines; secrets are redacted "
                            "in both."),
    th.Property("metrics", th.ObjectType(
        th.Property("pushgateway_url", th.StringType,
                    description="Push the run's metrics to this Pushgateway at the end "
                                "(batch jobs)."),
        th.Property("textfile_dir", th.StringType,
                    description="Else write <dir>/<tap name>.prom for node-exporter's "
                                "textfile collector."),
        th.Property("port", th.IntegerType,
                    description="Else serve /metrics on 127.0.0.1:<port> during the run."),
        additional_properties=False,
    ), description="Prometheus metrics: push to a Pushgateway at the end, write a "
                   "node-exporter textfile, or serve on 127.0.0.1:<port> during the run."),
    th.Property("progress_interval_seconds", th.NumberType(minimum=0),
                default=DEFAULT_INTERVAL_SECONDS,
                description="Every this many seconds, log one progress line per stream "
                            "that sent rows (rows so far, rows/s); one final line per "
                            "stream at the end. 0 logs only the final lines."),
).to_dict()

BATCH_SIZE_SETTING = th.Property(
    "batch_size", th.IntegerType, default=DEFAULT_BATCH_SIZE,
    description="Records per BATCH file.").to_dict()["batch_size"]

RERUN = "a rerun starts again from the last STATE"
DEBUG_HINT = "LOGLEVEL=DEBUG shows the traceback"
_DATABASE = ("the source database failed", "check that the server is up and reachable and "
             "the connection settings (host, port, user, password, database, sslmode or "
             f"sqlalchemy_url); {RERUN}")
_HTTP = ("an HTTP request failed", f"check api_base and the network; {RERUN}")
_API = ("the API refused the request", f"check the credentials and the selection; {RERUN}")
_CONFIG = ("the config is invalid", "fix the setting named above")
KNOWN_FAILURES: dict[tuple[str, str], tuple[str, str]] = {
    ("sqlalchemy.exc", "DBAPIError"): _DATABASE,
    ("psycopg2", "Error"): _DATABASE,
    ("adbc_driver_manager", "Error"): _DATABASE,
    ("requests.exceptions", "RequestException"): _HTTP,
    ("urllib3.exceptions", "HTTPError"): _HTTP,
    ("stripe._error", "StripeError"): _API,
    ("singer_sdk.exceptions", "FatalAPIError"): _API,
    ("singer_sdk.exceptions", "RetriableAPIError"): _API,
    ("singer_sdk.exceptions", "ConfigurationError"): _CONFIG,
}
"""Third-party exception families a user can act on (module, class; subclasses
included), with what failed and what to check. Matched by name, so no driver is
imported that the tap does not use."""


def known_failure(exc: BaseException) -> str | None:
    """One line for a known third-party failure (:data:`KNOWN_FAILURES`), else None."""
    for cls in type(exc).__mro__:
        found = KNOWN_FAILURES.get((cls.__module__, cls.__name__))
        if found is not None:
            what, hint = found
            return f"{what}: {_first_line(exc)} ({type(exc).__name__}); {hint}"
    return None


def _first_line(exc: BaseException) -> str:
    """The driver's own text: SQLAlchemy wraps it with the statement and a web link."""
    cause = getattr(exc, "orig", None) or exc
    errors = getattr(exc, "errors", None)  # singer-sdk's ConfigValidationError
    text = "; ".join(map(str, errors)) if errors else str(cause)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


class _SyncFailureEcho(logging.Filter):
    """singer-sdk logs "An unhandled error occurred while syncing 'S'" before the error
    reaches the tap's handler, which reports it in one line: the echo is dropped below
    DEBUG, and its stream is remembered so that line can name it."""

    TEMPLATE = "An unhandled error occurred while syncing '%s'"
    stream: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.TEMPLATE:
            return True
        if isinstance(record.args, tuple) and record.args:
            _SyncFailureEcho.stream = str(record.args[0])
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _install_sync_failure_filter() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _SyncFailureEcho) for f in handler.filters):
            handler.addFilter(_SyncFailureEcho())


def _naming_the_stream(message: str) -> str:
    stream = _SyncFailureEcho.stream
    if stream and f"'{stream}'" not in message:
        return f"stream '{stream}': {message}"
    return message


@contextmanager
def exit_on_dativo_error(logger: logging.Logger) -> Iterator[None]:
    """Turn every failure into one ERROR line: exit 2 for a :class:`DativoError` or a
    known third-party failure (:func:`known_failure`), exit 1 for anything else.

    The message names the file, line, stream or setting and the fix; a traceback would
    bury it, so it is only added at log level DEBUG.
    """
    debug = logger.isEnabledFor(logging.DEBUG)
    try:
        yield
    except DativoError as exc:
        logger.error("%s", _naming_the_stream(str(exc)), exc_info=debug)
        sys.exit(2)
    except (click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort):
        raise  # click's own control flow (``ctx.exit()`` after --discover) and usage errors
    except Exception as exc:
        known = known_failure(exc)
        if known is not None:
            logger.error("%s", _naming_the_stream(known), exc_info=debug)
            sys.exit(2)
        logger.error("%s", _naming_the_stream(
            f"unexpected {type(exc).__name__}: {_first_line(exc)}; {DEBUG_HINT}, please "
            "report it"), exc_info=debug)
        sys.exit(1)


class _CountingWriter:
    """Wraps the tap's message writer to count RECORD messages per stream (metrics and
    progress lines)."""

    def __init__(self, inner: Any, run: RunMetrics, progress: ProgressReporter) -> None:
        self._inner = inner
        self._run = run
        self._progress = progress
        self._counters: dict[str, _Counter] = {}

    def write_message(self, message: Any) -> None:
        if getattr(message, "type", None) == "RECORD":  # a str enum equals its value
            self.count(message.stream, 1)
        self._inner.write_message(message)

    def count(self, stream: str, records: int) -> None:
        counter = self._counters.get(stream)
        if counter is None:
            counter = self._counters[stream] = metrics.RECORDS_RECEIVED.labels(
                **self._run.stream(stream))
        counter.inc(records)
        self._progress.add(stream, records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ObservedTap:
    """Mixin for singer-sdk taps (list it before ``Tap``)."""

    name: str
    logger: logging.Logger
    config: Any
    config_jsonschema: dict
    message_writer: Any
    _config: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        secret_keys = [k for k, v in self.config_jsonschema.get("properties", {}).items()
                       if v.get("secret")]
        given = kwargs.get("config")
        # Redact from the start: validation and discovery (in super) may log and fail.
        logs.configure(secrets=logs.secret_values(given if isinstance(given, Mapping)
                                                  else {}, secret_keys))
        _install_sync_failure_filter()
        super().__init__(*args, **kwargs)
        logs.configure(secrets=logs.secret_values(self.config, secret_keys),
                       log_format=self.config.get("log_format") or "text")
        self.message_writer = _CountingWriter(self.message_writer, self.run_metrics,
                                              self.progress)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """singer-sdk's hook, through :func:`validate_config` (secret-safe messages,
        one :class:`ConfigError`, exit 2)."""
        return validate_config(self, self._config, raise_errors=raise_errors)

    def count_records(self, stream: str, records: int) -> None:
        """Count records sent in BATCH files (RECORD messages are counted as written)."""
        self.message_writer.count(stream, records)

    @cached_property
    def run_metrics(self) -> RunMetrics:
        """Created on first use: API taps make requests (discovery) inside ``__init__``."""
        return RunMetrics(self.name, self.config.get("tenant_id") or "default",
                          MetricsSettings.from_config(self.config.get("metrics")))

    @cached_property
    def progress(self) -> ProgressReporter:
        """Per-stream progress lines; a fast path writing RECORDs itself counts them
        with :meth:`count_records` (or ``progress.add``)."""
        every = self.config.get("progress_interval_seconds")
        return ProgressReporter(self.logger, DEFAULT_INTERVAL_SECONDS if every is None
                                else float(every))

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        for key, schema in OBSERVABILITY_SETTINGS["properties"].items():
            config_jsonschema["properties"].setdefault(key, schema)
        super().append_builtin_config(config_jsonschema)  # type: ignore[misc]
        # dativo.batch_files reads batch_config.batch_size, which singer-sdk's schema lacks.
        batch = config_jsonschema["properties"].get("batch_config", {}).get("properties")
        if batch is not None:
            batch.setdefault("batch_size", BATCH_SIZE_SETTING)

    def sync_all(self) -> None:
        self._warn_when_nothing_selected()
        self.progress.start()
        try:
            super().sync_all()  # type: ignore[misc]
        except BaseException:
            self.progress.final()
            self.run_metrics.finish(success=False)
            raise
        self.progress.final()
        self.run_metrics.finish(success=True)

    def _warn_when_nothing_selected(self) -> None:
        """One line when the run will send nothing because no stream is selected: an SQL
        tap deselects every discovered stream (as singer-sdk does), so a run without a
        catalog, or with one nobody edited, would otherwise exit 0 in silence."""
        streams = list(getattr(self, "streams", {}).values())
        if streams and not any(s.selected or s.has_selected_descendents for s in streams):
            self.logger.warning(
                "no stream is selected, so nothing is sent: select streams with --catalog "
                "(set \"selected\": true in the metadata entry with breadcrumb [] of each "
                "stream in the --discover output) or with Meltano's `select`")

    @classmethod
    def invoke(cls, **kwargs: Any) -> None:
        with exit_on_dativo_error(cls.logger):
            super().invoke(**kwargs)  # type: ignore[misc]

    @classmethod
    def cb_discover(cls, ctx: Any, param: Any, value: bool) -> None:
        """--discover runs in a click callback, outside ``invoke``: wrapped the same."""
        with exit_on_dativo_error(cls.logger):
            super().cb_discover(ctx, param, value)  # type: ignore[misc]

    @classmethod
    def cb_test(cls, ctx: Any, param: Any, value: str) -> None:
        """--test runs in a click callback, outside ``invoke``: wrapped the same."""
        with exit_on_dativo_error(cls.logger):
            super().cb_test(ctx, param, value)  # type: ignore[misc]
