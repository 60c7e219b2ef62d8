"""What every dativo tap adds to singer-sdk: clean errors, redacted logs, metrics.

Mix :class:`ObservedTap` in before ``singer_sdk.Tap``. A :class:`DativoError` (bad
config, bad input, an API refusing) becomes one ERROR line and exit code 2 in every
entry point (sync, ``--discover``, ``--test``). Secrets (settings marked secret,
passwords in DSNs, key-shaped strings) are masked in every log line from the moment
the config is parsed; RECORD messages are counted per stream as they are written; and
the run's metrics are exported at the end (see :mod:`dativo.metrics`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

from dativo import logs, metrics
from dativo.errors import DativoError
from dativo.metrics import MetricsSettings, RunMetrics

if TYPE_CHECKING:
    from prometheus_client import Counter as _Counter

OBSERVABILITY_SETTINGS = th.PropertiesList(
    th.Property("tenant_id", th.StringType,
                description="Tenant label on this tap's metrics (default 'default')."),
    th.Property("log_format", th.StringType, default="text", allowed_values=["text", "json"],
                description="text for humans, json for log pipelines; secrets are redacted "
                            "in both."),
    th.Property("metrics", th.ObjectType(
        th.Property("pushgateway_url", th.StringType),
        th.Property("textfile_dir", th.StringType),
        th.Property("port", th.IntegerType),
    ), description="Prometheus metrics: push to a Pushgateway at the end, write a "
                   "node-exporter textfile, or serve on 127.0.0.1:<port> during the run."),
).to_dict()


@contextmanager
def exit_on_dativo_error(logger: logging.Logger) -> Iterator[None]:
    """Turn a DativoError into one ERROR line and exit code 2, as all Dativo CLIs do.

    The message names the file, line, stream or setting and the fix; a traceback would
    bury it, so it is only added at log level DEBUG.
    """
    try:
        yield
    except DativoError as exc:
        logger.error("%s", exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        sys.exit(2)


class _CountingWriter:
    """Wraps the tap's message writer to count RECORD messages per stream."""

    def __init__(self, inner: Any, run: RunMetrics) -> None:
        self._inner = inner
        self._run = run
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

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ObservedTap:
    """Mixin for singer-sdk taps (list it before ``Tap``)."""

    name: str
    logger: logging.Logger
    config: Any
    config_jsonschema: dict
    message_writer: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        secret_keys = [k for k, v in self.config_jsonschema.get("properties", {}).items()
                       if v.get("secret")]
        logs.configure(secrets=logs.secret_values(self.config, secret_keys),
                       log_format=self.config.get("log_format") or "text")
        self.message_writer = _CountingWriter(self.message_writer, self.run_metrics)

    def count_records(self, stream: str, records: int) -> None:
        """Count records sent in BATCH files (RECORD messages are counted as written)."""
        self.message_writer.count(stream, records)

    @cached_property
    def run_metrics(self) -> RunMetrics:
        """Created on first use: API taps make requests (discovery) inside ``__init__``."""
        return RunMetrics(self.name, self.config.get("tenant_id") or "default",
                          MetricsSettings.from_config(self.config.get("metrics")))

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        for key, schema in OBSERVABILITY_SETTINGS["properties"].items():
            config_jsonschema["properties"].setdefault(key, schema)
        super().append_builtin_config(config_jsonschema)  # type: ignore[misc]

    def sync_all(self) -> None:
        try:
            super().sync_all()  # type: ignore[misc]
        except BaseException:
            self.run_metrics.finish(success=False)
            raise
        self.run_metrics.finish(success=True)

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
