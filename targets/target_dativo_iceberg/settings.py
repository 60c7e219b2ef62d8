"""Target settings: validated once from config into a frozen value."""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from dativo.errors import ConfigError
from dativo.iceberg.catalog import default_catalog_properties
from dativo.metrics import MetricsSettings
from dativo.names import check_tenant
from dativo.open_files import MIN_OPEN_FILES, RESERVED_DESCRIPTORS, default_max_open_files
from target_dativo_iceberg.batch_roots import BatchFilePolicy, default_policy
from target_dativo_iceberg.markdown_kv_writer import MarkdownKVSettings, OutputFormat

ValidationMode = Literal["strict", "warn"]
LoadMethod = Literal["append-only", "upsert", "overwrite"]
SchemaEvolution = Literal["discard_columns", "evolve", "freeze"]

DEFAULT_BATCH_SIZE_ROWS = 200_000
DEFAULT_BATCH_MAX_BYTES = 128 * 1024 * 1024
DEFAULT_COMMIT_INTERVAL_SECONDS = 10.0
DEFAULT_TARGET_FILE_SIZE_MB = 160
DEFAULT_MAX_STATE_LAG_SECONDS = 60.0
DEFAULT_PROGRESS_INTERVAL_SECONDS = 10.0
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
# The JSON readers' own per-object ceiling (DuckDB's maximum_object_size in our queries).
MAX_RECORD_BYTES_CEILING = 256 * 1024 * 1024
# Blocks are read no larger than the limit; below the input buffer's size, input read
# ahead into the buffer would be unseen by the flush timer's poll (see input_timer).
MIN_RECORD_BYTES = 1024 * 1024
Compression = Literal["zstd", "snappy", "gzip", "lz4", "uncompressed"]


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """Everything the target needs from its config, checked up front."""

    tenant_id: str
    catalog: Mapping[str, str]
    contracts_dir: Path | None = None
    stream_contracts: Mapping[str, str] = field(default_factory=dict)
    validation_mode: ValidationMode = "strict"
    require_contract: bool = False
    batch_size_rows: int = DEFAULT_BATCH_SIZE_ROWS
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES
    commit_interval_seconds: float = DEFAULT_COMMIT_INTERVAL_SECONDS
    load_method: LoadMethod = "append-only"
    schema_evolution: SchemaEvolution = "discard_columns"
    hard_delete: bool = False
    process_activate_version_messages: bool = True
    target_file_size_mb: int = DEFAULT_TARGET_FILE_SIZE_MB
    compression: Compression = "zstd"
    max_state_lag_seconds: float = DEFAULT_MAX_STATE_LAG_SECONDS
    progress_interval_seconds: float = DEFAULT_PROGRESS_INTERVAL_SECONDS
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    batch_files: BatchFilePolicy = field(default_factory=default_policy)  # batch_roots, ...
    max_open_files: int = field(default_factory=default_max_open_files)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    audit_log_path: Path | None = None
    format: OutputFormat = "parquet"
    markdown_kv: MarkdownKVSettings | None = None  # set when format is markdown_kv

    @property
    def open_spools(self) -> int:
        """Half of ``max_open_files`` for stream spools (the main thread's)..."""
        return max(1, self.max_open_files // 2)

    @property
    def open_data_files(self) -> int:
        """... the rest for tables' open data files (the commit thread's)."""
        return max(1, self.max_open_files - self.open_spools)

    @property
    def table_properties(self) -> dict[str, str]:
        """Iceberg table properties these settings pin (other engines honour them too)."""
        return {"write.target-file-size-bytes": str(self.target_file_size_mb * 1024 * 1024),
                "write.parquet.compression-codec": self.compression}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TargetSettings:
        """Build settings, raising :class:`ConfigError` that names the bad key."""
        tenant = check_tenant("tenant_id", config.get("tenant_id"))
        # Meltano passes declared but unset catalog.* settings as nulls: still the default.
        catalog = flat_properties(config.get("catalog") or {}) or default_catalog_properties()
        if "warehouse" not in catalog and catalog.get("type", "sql") == "sql":
            raise ConfigError("catalog.warehouse: a SQL catalog needs a warehouse location")
        catalog.setdefault("name", "dativo")
        contracts_dir = config.get("contracts_dir")
        if contracts_dir is not None and not Path(contracts_dir).is_dir():
            raise ConfigError(f"contracts_dir: {contracts_dir} is not a directory")
        mode = config.get("validation_mode", "strict")
        if mode not in ("strict", "warn"):
            raise ConfigError(f"validation_mode: {mode!r} must be 'strict' or 'warn'")
        load_method = config.get("load_method") or "append-only"
        if load_method not in get_args(LoadMethod):
            raise ConfigError(
                f"load_method: {load_method!r} is not one of {', '.join(get_args(LoadMethod))}"
            )
        evolution = config.get("schema_evolution") or "discard_columns"
        if evolution not in get_args(SchemaEvolution):
            raise ConfigError(
                f"schema_evolution: {evolution!r} is not one of "
                f"{', '.join(get_args(SchemaEvolution))}"
            )
        if config.get("add_record_metadata"):
            raise ConfigError(
                "add_record_metadata: not supported; the contract defines the table's "
                "columns, so declare any _sdc_* columns you want to keep in the contract"
            )
        rows = _positive_int(config, "batch_size_rows", DEFAULT_BATCH_SIZE_ROWS)
        max_bytes = _positive_int(config, "batch_max_bytes", DEFAULT_BATCH_MAX_BYTES)
        interval = _seconds(config, "commit_interval_seconds", DEFAULT_COMMIT_INTERVAL_SECONDS,
                            "0 commits every batch")
        lag = _seconds(config, "max_state_lag_seconds", DEFAULT_MAX_STATE_LAG_SECONDS,
                       "0 closes open data files at every commit")
        compression = config.get("compression") or "zstd"
        if compression not in get_args(Compression):
            raise ConfigError(f"compression: {compression!r} is not one of "
                              f"{', '.join(get_args(Compression))}")
        output_format, markdown_kv = _output_format(config, catalog, load_method)
        return cls(
            tenant_id=tenant,
            catalog=catalog,
            contracts_dir=Path(contracts_dir) if contracts_dir else None,
            stream_contracts=dict(config.get("stream_contracts") or {}),
            validation_mode=mode,
            require_contract=_flag(config, "require_contract", default=False),
            batch_size_rows=rows,
            batch_max_bytes=max_bytes,
            commit_interval_seconds=float(interval),
            load_method=load_method,
            schema_evolution=evolution,
            hard_delete=_flag(config, "hard_delete", default=False),
            target_file_size_mb=_positive_int(config, "target_file_size_mb",
                                              DEFAULT_TARGET_FILE_SIZE_MB),
            compression=compression,
            max_state_lag_seconds=lag,
            progress_interval_seconds=_seconds(config, "progress_interval_seconds",
                                               DEFAULT_PROGRESS_INTERVAL_SECONDS,
                                               "0 logs only the final lines"),
            max_record_bytes=_record_bytes(config),
            batch_files=BatchFilePolicy.from_config(config.get("batch_roots"),
                                                    config.get("batch_max_file_bytes")),
            max_open_files=_max_open_files(config),
            metrics=MetricsSettings.from_config(config.get("metrics")),
            audit_log_path=Path(config["audit_log_path"]) if config.get("audit_log_path")
            else None,
            process_activate_version_messages=_flag(
                config, "process_activate_version_messages", default=True),
            format=output_format,
            markdown_kv=markdown_kv,
        )


def _output_format(config: Mapping[str, Any], catalog: Mapping[str, str], load_method: str
                   ) -> tuple[OutputFormat, MarkdownKVSettings | None]:
    """``format`` and, for ``markdown_kv``, its validated ``markdown_kv.*`` settings."""
    output_format = config.get("format") or "parquet"
    raw = config.get("markdown_kv")
    if output_format == "parquet":
        if isinstance(raw, Mapping) and any(v is not None for v in raw.values()):
            raise ConfigError("markdown_kv: only used with format: markdown_kv; set format "
                              "or remove markdown_kv")
        return "parquet", None
    if output_format != "markdown_kv":
        raise ConfigError(f"format: {output_format!r} is not one of parquet, markdown_kv")
    return "markdown_kv", MarkdownKVSettings.from_config(
        raw, warehouse=catalog.get("warehouse", ""), load_method=load_method)


def _seconds(config: Mapping[str, Any], key: str, default: float, zero: str) -> float:
    value = config.get(key, default)
    if value is None:
        return default
    # singer-sdk parses JSON config numbers with fractions as Decimal.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or value < 0:
        raise ConfigError(f"{key}: {value!r} must be a number of seconds >= 0 ({zero})")
    return float(value)


def _max_open_files(config: Mapping[str, Any]) -> int:
    """``max_open_files``, which must leave the reserve under the process's limit."""
    value = _positive_int(config, "max_open_files", 0)
    if not value:  # the default fits under any limit; only a chosen value is checked
        return default_max_open_files()
    if value < MIN_OPEN_FILES:
        raise ConfigError(f"max_open_files: {value} must be at least {MIN_OPEN_FILES} "
                          "(a stream's spool and a table's data file)")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and value > soft - RESERVED_DESCRIPTORS:
        raise ConfigError(
            f"max_open_files: {value} is more than this process may open (ulimit -n is "
            f"{soft}, and {RESERVED_DESCRIPTORS} are kept for the catalog, DuckDB and "
            f"sockets); set at most {max(MIN_OPEN_FILES, soft - RESERVED_DESCRIPTORS)}, "
            "or raise ulimit -n")
    return value


def _record_bytes(config: Mapping[str, Any]) -> int:
    value = _positive_int(config, "max_record_bytes", DEFAULT_MAX_RECORD_BYTES)
    if not MIN_RECORD_BYTES <= value <= MAX_RECORD_BYTES_CEILING:
        raise ConfigError(f"max_record_bytes: {value} must be between {MIN_RECORD_BYTES} and "
                          f"{MAX_RECORD_BYTES_CEILING} bytes (1 MiB to 256 MiB, the most the "
                          "JSON readers take)")
    return value


def _flag(config: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = config.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} must be true or false")
    return value


def flat_properties(props: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """pyiceberg's flat ``s3.endpoint`` keys from Meltano's nested form.

    Meltano turns dotted setting names (``catalog.s3.endpoint``, or ``s3.endpoint:``
    in meltano.yml) into nested objects, and gives declared but unset ones as null."""
    flat: dict[str, str] = {}
    for key, value in props.items():
        if isinstance(value, Mapping):
            flat.update(flat_properties(value, f"{prefix}{key}."))
        elif value is not None:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def _positive_int(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key}: {value!r} must be a positive integer")
    return value
