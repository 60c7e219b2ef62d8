"""target-dativo-iceberg: singer-sdk provides the CLI, config validation and --about;
the message path is our own columnar loop (docs/architecture.md, "The path of one record")."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import IO, TYPE_CHECKING, Any, ClassVar

import orjson
from singer_sdk import Target
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TargetCapabilities,
)

from dativo import logs, run_report
from dativo.errors import DativoError, InternalError
from dativo.exit_codes import SDK_FAILURES, Failure, exit_on_error, logged
from dativo.logs import secret_values
from dativo.metrics import RunMetrics
from dativo.schema_messages import validate_config
from target_dativo_iceberg.config_schema import CONFIG_SCHEMA
from target_dativo_iceberg.loader import Loader
from target_dativo_iceberg.message_loop import run_message_loop
from target_dativo_iceberg.settings import TargetSettings

if TYPE_CHECKING:
    from dativo.iceberg.writer import IcebergWriter

LOGGER = logging.getLogger("target-dativo-iceberg")
_UNEXPECTED_HINT = ("no STATE was emitted past the last commit, so a rerun is safe. Run with "
                    "LOGLEVEL=DEBUG for the traceback and report it if it persists")


def _write_state(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")
    sys.stdout.buffer.flush()


class TargetDativoIceberg(Target):
    """Validate Singer records against ODCS contracts and land them in Apache Iceberg."""

    name = "target-dativo-iceberg"

    # Our own message loop does not apply stream maps, flattening or per-record
    # jsonschema validation, so those are not advertised (nor their settings offered).
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STRUCTURED_LOGGING,
        PluginCapabilities.ACTIVATE_VERSION,
        TargetCapabilities.HARD_DELETE,
    ]

    config_jsonschema = CONFIG_SCHEMA.to_dict()  # the settings, declared in config_schema.py
    loader: Loader | None = None  # the run's, once it started: the run report's summary

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """singer-sdk's hook: one :class:`ConfigError` whose messages never quote a
        secret, a long value or an object (:mod:`dativo.schema_messages`)."""
        return validate_config(self, self._config, raise_errors=raise_errors)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: Any = None,
        file_input: IO[str] | None = None,
    ) -> None:
        """Run the target; every failure becomes one log line and an exit code
        (:mod:`dativo.exit_codes`): 2 for a :class:`DativoError`, 75 when a rerun may
        succeed (a commit conflict, a lost connection), 1 for a bug or an environment
        fault, after which no STATE past the last commit was emitted. Either way the run
        report is written (:mod:`dativo.run_report`)."""
        super(Target, cls).invoke(about=about, about_format=about_format)
        raw_config = config.config if config else {}
        secret_keys = [k for k, v in cls.config_jsonschema["properties"].items()
                       if v.get("secret")]
        # Redact before the SDK validates the config: its errors quote values.
        logs.configure(secrets=secret_values(raw_config, secret_keys))
        cls.print_version(print_fn=cls.logger.info)
        started: list[TargetDativoIceberg] = []

        def report_failure(failure: Failure) -> None:
            """The run report of a failed run, with the summary as far as it got."""
            loader, summary = started[0].loader if started else None, None
            try:
                summary = loader.summary() if loader is not None else None
            except Exception as exc:  # the report must never change how the run ends
                LOGGER.warning("The run report has no summary: %s", exc)
            run_report.write_report(cls.name, "target", failure.exit_code, failure.line,
                                    summary)

        with exit_on_error(logged(LOGGER), families=SDK_FAILURES, hint=_UNEXPECTED_HINT,
                           on_failure=report_failure):
            target = cls(config=raw_config, validate_config=True,
                         parse_env_config=config.parse_env if config else False,
                         setup_mapper=False)
            started.append(target)
            logs.configure(secrets=secret_values(target.config, secret_keys),
                           log_format=target.config["log_format"])
            summary = target.run(file_input.buffer if file_input is not None
                                 else sys.stdin.buffer)
        run_report.write_report(cls.name, "target", 0, None, summary)
        # Everything is committed and the loader is closed; skip interpreter teardown,
        # which spends ~0.25 s freeing Arrow, DuckDB and pyiceberg state for nothing.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)

    def run(self, source: IO[bytes]) -> dict[str, Any]:
        """Load every message from ``source``; return the run summary."""
        settings = TargetSettings.from_config(self.config)
        metrics = RunMetrics(self.name, settings.tenant_id, settings.metrics)
        loader = self.loader = Loader(settings, functools.partial(_open_writer, settings),
                                      _write_state, metrics)
        try:
            lines = run_message_loop(source, loader)
        except BaseException as exc:
            if isinstance(exc, DativoError) and not isinstance(exc, InternalError):
                loader.settle(exc)  # bad input: load what came before it
            else:  # a bug (an escaped InternalError too): what it touched is suspect
                loader.close()
            metrics.finish(success=False)
            raise
        LOGGER.info("Read %d lines of input", lines)
        try:
            summary = loader.finish()  # closes the loader, also when it raises
        except BaseException:
            metrics.finish(success=False)
            raise
        metrics.finish(success=True)
        return summary


def _open_writer(settings: TargetSettings) -> IcebergWriter:
    from dativo.iceberg.writer import IcebergWriter  # pyiceberg, on the commit thread

    return IcebergWriter(settings.catalog, settings.tenant_id, settings.table_properties)


if __name__ == "__main__":
    TargetDativoIceberg.cli()
