"""The ``log_format`` and ``metrics`` settings every dativo plugin declares.

Their keys, types, choices and defaults are written here once, for the taps
(:data:`dativo.tap_runtime.OBSERVABILITY_SETTINGS`) and the target (its
``config_schema``), so they always match what :func:`dativo.logs.configure` and
:meth:`dativo.metrics.MetricsSettings.from_config` read. Only the descriptions are the
caller's: each plugin's ``--about`` (and its Meltano definition) says what the setting
does for that plugin. Built on singer-sdk's typing alone, so the target imports no Tap
machinery through it.
"""

from __future__ import annotations

from typing import get_args

from singer_sdk import typing as th

from dativo.logs import LogFormat


def log_format_setting(description: str) -> th.Property:
    """``log_format``: text (the default) or json log lines."""
    return th.Property("log_format", th.StringType, default="text",
                       allowed_values=list(get_args(LogFormat)), description=description)


def metrics_setting(*, description: str, pushgateway_url: str, prom_file: str
                    ) -> th.Property:
    """``metrics``: where the run's Prometheus metrics go.

    Args:
        description: The setting's description.
        pushgateway_url: The description of ``metrics.pushgateway_url``.
        prom_file: The file written under ``metrics.textfile_dir``, as its description
            names it (``target-dativo-iceberg.prom``).
    """
    return th.Property("metrics", th.ObjectType(
        th.Property("pushgateway_url", th.StringType, description=pushgateway_url),
        th.Property("textfile_dir", th.StringType,
                    description=f"Else write <dir>/{prom_file} for node-exporter's "
                                "textfile collector."),
        th.Property("port", th.IntegerType,
                    description="Else serve /metrics on 127.0.0.1:<port> during the run."),
        additional_properties=False,
    ), description=description)
