"""Prometheus metrics shared by every dativo plugin.

A plugin run is a short-lived batch process, so metrics live in one process-wide
registry and leave it in one of three ways, set by the plugin's ``metrics`` setting:
pushed to a Prometheus Pushgateway at the end of the run (``pushgateway_url``, the
usual way for batch jobs), written as a node-exporter textfile (``textfile_dir``), or
served over HTTP while the run lasts (``port``). Labels are plugin, tenant and stream
(plus reason, table or endpoint where it matters); never a record value.

``observability/grafana/dativo.json`` and ``observability/prometheus/alerts.yml`` use
these names; a test checks that they use no other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import (
    push_to_gateway,
    start_http_server,
    write_to_textfile,
)

from dativo.errors import ConfigError

LOGGER = logging.getLogger(__name__)
REGISTRY = CollectorRegistry(auto_describe=True)
_RUN = ("plugin", "tenant")
_STREAM = (*_RUN, "stream")

RECORDS_RECEIVED = Counter("dativo_records_received", "Records a plugin read or received.",
                           _STREAM, registry=REGISTRY)
RECORDS_WRITTEN = Counter("dativo_records_written", "Records committed to their table.",
                          _STREAM, registry=REGISTRY)
RECORDS_REJECTED = Counter("dativo_records_rejected",
                           "Records sent to the dead-letter table, by failed field:rule.",
                           (*_STREAM, "reason"), registry=REGISTRY)
BYTES_WRITTEN = Counter("dativo_bytes_written", "Bytes of data files committed.", _STREAM,
                        registry=REGISTRY)
BATCHES = Counter("dativo_batches", "Batches checked and written.", _STREAM,
                  registry=REGISTRY)
COMMITS = Counter("dativo_iceberg_commits", "Iceberg commits (snapshots published).",
                  (*_RUN, "table"), registry=REGISTRY)
COMMIT_CONFLICTS = Counter("dativo_iceberg_commit_conflicts",
                           "Commits retried after a concurrent writer won the race.",
                           (*_RUN, "table"), registry=REGISTRY)
BATCH_COMMIT_LATENCY = Histogram(
    "dativo_batch_commit_latency_seconds",
    "Seconds from a batch being checked to the commit that makes all its rows durable.",
    _RUN, buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600), registry=REGISTRY)
API_REQUESTS = Counter("dativo_api_requests", "HTTP requests an API tap sent, by status.",
                       (*_RUN, "endpoint", "status"), registry=REGISTRY)
API_RETRIES = Counter("dativo_api_retries", "HTTP requests retried (429, 5xx, network).",
                      (*_RUN, "endpoint"), registry=REGISTRY)
API_DAILY_USED = Gauge("dativo_api_daily_requests_used",
                       "API requests of the daily allowance used, as the API last reported "
                       "it (Salesforce's Sforce-Limit-Info).", _RUN, registry=REGISTRY)
API_DAILY_LIMIT = Gauge("dativo_api_daily_requests_limit",
                        "The API's daily request allowance, as it last reported it.", _RUN,
                        registry=REGISTRY)
CIRCUIT_OPEN = Gauge("dativo_api_circuit_open", "1 while an API tap's circuit breaker is open.",
                     _RUN, registry=REGISTRY)
RUN_DURATION = Gauge("dativo_run_duration_seconds", "Duration of the last run.", _RUN,
                     registry=REGISTRY)
LAST_SUCCESS = Gauge("dativo_last_success_timestamp_seconds",
                     "Unix time the last successful run ended.", _RUN, registry=REGISTRY)
LAST_STREAM_SUCCESS = Gauge("dativo_stream_last_success_timestamp_seconds",
                            "Unix time a stream's rows were last committed.", _STREAM,
                            registry=REGISTRY)
QUALITY_CHECKS = Counter(
    "dativo_quality_checks",
    "Quality results of commits (kind rule, anomaly, profile or drift; outcome pass, fail, "
    "flag or info).", (*_RUN, "table", "kind", "outcome"), registry=REGISTRY)
QUALITY_MEASURED = Gauge(
    "dativo_quality_measured_value",
    "A table's last measured value per quality rule, and its row_count and reject_ratio "
    "(per-column profile metrics stay in <table>__quality: unbounded labels).",
    (*_RUN, "table", "rule"), registry=REGISTRY)

METRIC_NAMES = frozenset(
    sample_name
    for metric in REGISTRY.collect()
    for sample_name in (metric.name, f"{metric.name}_total", f"{metric.name}_bucket",
                        f"{metric.name}_sum", f"{metric.name}_count", f"{metric.name}_created")
)
"""Every series name these metrics can expose (for checking dashboards and alerts)."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Where a run's metrics go; all unset means they are only kept in memory."""

    pushgateway_url: str | None = None
    textfile_dir: Path | None = None
    port: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> MetricsSettings:
        """Read the ``metrics`` setting, naming the bad key on error."""
        config = config or {}
        if not isinstance(config, Mapping):
            raise ConfigError("metrics: must be an object with pushgateway_url, "
                              "textfile_dir or port")
        port = config.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                 or not 0 < port < 65536):
            raise ConfigError(f"metrics.port: {port!r} must be a TCP port number")
        textfile = config.get("textfile_dir")
        if textfile is not None and not Path(textfile).is_dir():
            raise ConfigError(f"metrics.textfile_dir: {textfile} is not a directory")
        return cls(pushgateway_url=config.get("pushgateway_url") or None,
                   textfile_dir=Path(textfile) if textfile else None, port=port)


class RunMetrics:
    """One plugin run's labels, start time and export."""

    def __init__(self, plugin: str, tenant: str, settings: MetricsSettings) -> None:
        self.plugin, self.tenant, self.settings = plugin, tenant, settings
        self.labels = {"plugin": plugin, "tenant": tenant}
        self._started = time.monotonic()
        if settings.port is not None:
            start_http_server(settings.port, addr="127.0.0.1", registry=REGISTRY)
            LOGGER.info("Serving metrics on http://127.0.0.1:%d/metrics", settings.port)

    def stream(self, stream: str) -> dict[str, str]:
        return {**self.labels, "stream": stream}

    def finish(self, *, success: bool) -> None:
        """Record the run's outcome and export; an export failure is logged, not raised
        (the data is committed; losing a metrics push must not fail the run)."""
        RUN_DURATION.labels(**self.labels).set(time.monotonic() - self._started)
        if success:
            LAST_SUCCESS.labels(**self.labels).set(time.time())
        try:
            if self.settings.pushgateway_url:
                push_to_gateway(self.settings.pushgateway_url, job=self.plugin,
                                grouping_key={"tenant": self.tenant}, registry=REGISTRY,
                                timeout=10)
            if self.settings.textfile_dir:
                write_to_textfile(str(self.settings.textfile_dir / f"{self.plugin}.prom"),
                                  REGISTRY)
        except OSError as exc:
            LOGGER.warning("Could not export metrics (%s); the run itself succeeded=%s",
                           exc, success)

