"""What every dativo tap adds to singer-sdk: clean errors, redacted logs, metrics.

Mix :class:`ObservedTap` in before ``singer_sdk.Tap``. Every failure is one ERROR line
in every entry point (sync, ``--discover``, ``--test``): a :class:`DativoError` (bad
config, bad input, an API refusing) and the known third-party families (database
driver, HTTP client and singer-sdk errors; see :data:`dativo.exit_codes.KNOWN_FAILURES`)
exit 2, or 75 when a rerun may succeed (a source down or timing out, see
:data:`dativo.exit_codes.RETRY`); anything else (a bug) exits 1; the traceback is only
added at ``LOGLEVEL=DEBUG``. With ``DATIVO_RUN_REPORT_DIR`` set, every run ends with a
run report, the records sent per stream included (:mod:`dativo.run_report`). Config
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
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click
from singer_sdk import typing as th
from singer_sdk.helpers._batch import DEFAULT_BATCH_SIZE

from dativo import exit_codes, logs, metrics, run_report
from dativo.metrics import MetricsSettings, RunMetrics
from dativo.observability_settings import log_format_setting, metrics_setting
from dativo.progress import DEFAULT_INTERVAL_SECONDS, ProgressReporter
from dativo.schema_messages import validate_config

if TYPE_CHECKING:
    from prometheus_client import Counter as _Counter

OBSERVABILITY_SETTINGS = th.PropertiesList(
    th.Property("tenant_id", th.StringType,
                description="Tenant label on this tap's metrics (default 'default')."),
    log_format_setting("text for humans, json for log pipelines; secrets are redacted in "
                       "both."),
    metrics_setting(
        description="Prometheus metrics: push to a Pushgateway at the end, write a "
                    "node-exporter textfile, or serve on 127.0.0.1:<port> during the run.",
        pushgateway_url="Push the run's metrics to this Pushgateway at the end (batch "
                        "jobs).",
        prom_file="<tap name>.prom"),
    th.Property("progress_interval_seconds", th.NumberType(minimum=0),
                default=DEFAULT_INTERVAL_SECONDS,
                description="Every this many seconds, log one progress line per stream "
                            "that sent rows (rows so far, rows/s); one final line per "
                            "stream at the end. 0 logs only the final lines."),
).to_dict()

BATCH_SIZE_SETTING = th.Property(
    "batch_size", th.IntegerType, default=DEFAULT_BATCH_SIZE,
    description="Records per BATCH file.").to_dict()["batch_size"]


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


_records: Counter[str] = Counter()
"""The records the running tap has sent per stream (its :class:`_CountingWriter`'s),
for the run report of a failure, which is reported outside the tap instance."""


@contextmanager
def _exit_cleanly(logger: logging.Logger, plugin: str, *, sync: bool) -> Iterator[None]:
    """Every failure as one ERROR line naming its stream (:mod:`dativo.exit_codes`), and
    the run report: of a failure, of click's exit (``--discover``, ``--about``), and of
    a ``sync`` that ended. Only a sync's report has a summary (the records it sent per
    stream), so a reader tells it from the ``--discover`` run Meltano starts before it."""
    report = exit_codes.logged(logger)

    def write(exit_code: int, error: str | None) -> None:
        summary = {"records": dict(_records)} if sync else None
        run_report.write_report(plugin, "tap", exit_code, error, summary)

    try:
        with exit_codes.exit_on_error(
                lambda line, exc: report(_naming_the_stream(line), exc),
                hint="LOGLEVEL=DEBUG shows the traceback, please report it",
                families=exit_codes.KNOWN_FAILURES,
                on_failure=lambda failure: write(failure.exit_code,
                                                 _naming_the_stream(failure.line))):
            yield
    except click.exceptions.Exit as exc:
        write(exc.exit_code, None)
        raise
    if sync:
        write(0, None)


class _CountingWriter:
    """Wraps the tap's message writer to count RECORD messages per stream (metrics and
    progress lines)."""

    def __init__(self, inner: Any, run: RunMetrics, progress: ProgressReporter) -> None:
        global _records
        self._inner = inner
        self._run = run
        self._progress = progress
        self._counters: dict[str, _Counter] = {}
        _records = self.records = Counter()  # per stream, for the run report

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
        self.records[stream] += records
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
        # The schema's default fills in a missing log_format, but --discover of a tap
        # with a fixed catalog validates without failing, so a null one gets here too.
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
        with _exit_cleanly(cls.logger, cls.name, sync=True):
            super().invoke(**kwargs)  # type: ignore[misc]

    @classmethod
    def cb_discover(cls, ctx: Any, param: Any, value: bool) -> None:
        """--discover runs in a click callback, outside ``invoke``: wrapped the same."""
        with _exit_cleanly(cls.logger, cls.name, sync=False):
            super().cb_discover(ctx, param, value)  # type: ignore[misc]

    @classmethod
    def cb_test(cls, ctx: Any, param: Any, value: str) -> None:
        """--test runs in a click callback, outside ``invoke``: wrapped the same."""
        with _exit_cleanly(cls.logger, cls.name, sync=False):
            super().cb_test(ctx, param, value)  # type: ignore[misc]
