"""Target settings: built once from the validated config into a frozen value.

Each setting's type, choices and default are declared once, in
:mod:`target_dativo_iceberg.config_schema` (singer-sdk checks the config against it,
and fills in the defaults, before the target runs). The checks here are the ones a
schema cannot state: ranges with advice, rules that span settings, and the machine
(``ulimit -n``, whether ``contracts_dir`` exists).
"""

from __future__ import annotations

import math
import resource
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from singer_sdk.helpers.capabilities import (
    ACTIVATE_VERSION_CONFIG,
    TARGET_LOAD_METHOD_CONFIG,
    TargetLoadMethods,
)

from dativo.errors import ConfigError
from dativo.iceberg.catalog import catalog_properties
from dativo.iceberg.naming import MARKDOWN_SUFFIXES
from dativo.markdown_kv import Dialect
from dativo.metrics import MetricsSettings
from dativo.names import check_tenant
from dativo.open_files import MIN_OPEN_FILES, RESERVED_DESCRIPTORS, default_max_open_files
from target_dativo_iceberg.batch_roots import BatchFilePolicy
from target_dativo_iceberg.config_schema import (
    CONFIG_SCHEMA,
    Compression,
    Layout,
    OutputFormat,
    SchemaEvolution,
    Storage,
    ValidationMode,
)
from target_dativo_iceberg.markdown_kv_writer import (
    DOCUMENT_SCHEMA,
    MANIFEST_SCHEMA,
    ROW_PER_KV_SCHEMA,
    STRING_SCHEMA,
)

if TYPE_CHECKING:
    from dativo.crypto import Keyring

# The JSON readers' own per-object ceiling (DuckDB's maximum_object_size in our queries).
MAX_RECORD_BYTES_CEILING = 256 * 1024 * 1024
# Blocks are read no larger than the limit; below the input buffer's size, input read
# ahead into the buffer would be unseen by the flush timer's poll (see input_timer).
MIN_RECORD_BYTES = 1024 * 1024
PLACEHOLDERS = ("tenant", "stream", "doc_id", "date")  # of markdown_kv.path_pattern
MIN_ANOMALY_LOADS = 3  # anomaly_min_loads: a median needs a few values to be robust
MAX_ANOMALY_WINDOW = 1000  # anomaly_window: loads read back per commit


def _defaults(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {key: prop["default"] for key, prop in properties.items() if "default" in prop}


_PROPERTIES = CONFIG_SCHEMA.to_dict()["properties"]
# Ours, and singer-sdk's own load_method and process_activate_version_messages.
DEFAULTS = _defaults({**TARGET_LOAD_METHOD_CONFIG["properties"],
                      **ACTIVATE_VERSION_CONFIG["properties"], **_PROPERTIES})
_MARKDOWN_KV_DEFAULTS = _defaults(_PROPERTIES["markdown_kv"]["properties"])


@dataclass(frozen=True, slots=True)
class MarkdownKVSettings:
    """``markdown_kv.*``: how records are stored when ``format`` is ``markdown_kv``."""

    storage: Storage = _MARKDOWN_KV_DEFAULTS["storage"]
    dialect: Dialect = _MARKDOWN_KV_DEFAULTS["dialect"]
    layout: Layout = _MARKDOWN_KV_DEFAULTS["layout"]
    path_pattern: str = _MARKDOWN_KV_DEFAULTS["path_pattern"]
    records_per_file: int = _MARKDOWN_KV_DEFAULTS["records_per_file"]
    root: str = ""

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None, *, warehouse: str, load_method: str
                    ) -> MarkdownKVSettings:
        """Check ``markdown_kv`` (validated by the schema) against the other settings;
        raises :class:`ConfigError` naming the bad key."""
        values = {**_MARKDOWN_KV_DEFAULTS,
                  **{k: v for k, v in (raw or {}).items() if v not in (None, "")}}
        per_file = values["records_per_file"]
        if per_file < 1:
            raise ConfigError(f"markdown_kv.records_per_file: {per_file!r} must be a "
                              "positive integer (1: one file per record)")
        if per_file > 1 and values["dialect"] == "sectioned":
            raise ConfigError("markdown_kv.records_per_file: a sectioned file holds one "
                              "document; use 1, or dialect: record_blocks for batch files")
        pattern = values["path_pattern"]
        _check_pattern(pattern, per_file, load_method)
        root = values.get("root") or warehouse
        if values["storage"] == "raw_file" and "://" not in root:
            raise ConfigError(
                f"markdown_kv.root: raw files need a location URI (file:///... or "
                f"s3://bucket/prefix); the catalog's warehouse {root!r} is not one, so "
                "set markdown_kv.root")
        return cls(values["storage"], values["dialect"], values["layout"], pattern, per_file,
                   root.rstrip("/"))

    @property
    def table_suffix(self) -> str:
        """What the stream's table name gets for this pattern's own table."""
        as_text, as_files, per_kv, per_document = MARKDOWN_SUFFIXES
        if self.storage == "string":
            return as_text
        if self.storage == "raw_file":
            return as_files
        return per_kv if self.layout == "row_per_kv" else per_document

    @property
    def schema(self) -> pa.Schema:
        if self.storage == "string":
            return STRING_SCHEMA
        if self.storage == "raw_file":
            return MANIFEST_SCHEMA
        return ROW_PER_KV_SCHEMA if self.layout == "row_per_kv" else DOCUMENT_SCHEMA


def _check_pattern(pattern: str, per_file: int, load_method: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"markdown_kv.path_pattern: {pattern!r}: {exc}") from exc
    bad = sorted(n for n in names if n not in PLACEHOLDERS)
    if bad:
        raise ConfigError(f"markdown_kv.path_pattern: unknown placeholder {{{bad[0]}}}; use "
                          f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    if "doc_id" not in names:
        raise ConfigError("markdown_kv.path_pattern: needs {doc_id} (a batch file is named "
                          "after its first document), or files would overwrite each other")
    if not pattern.endswith(".md") or pattern.startswith("/"):
        raise ConfigError(f"markdown_kv.path_pattern: {pattern!r} must be relative to the "
                          "root and end in .md")
    if load_method == "upsert" and per_file > 1:
        raise ConfigError("markdown_kv.records_per_file: with load_method: upsert every "
                          "document needs a file of its own, which a rerun rewrites in place "
                          "(a batch file would keep the old copy); set records_per_file: 1, "
                          "or use append-only or overwrite for batch files")
    if load_method == "upsert" and "date" in names:
        raise ConfigError("markdown_kv.path_pattern: with load_method: upsert a document is "
                          "rewritten in place, so its path must not contain {date} (a "
                          "rerun on another day would leave the old copy behind)")


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """Everything the target needs from its config, checked up front."""

    tenant_id: str
    catalog: Mapping[str, str]
    contracts_dir: Path | None
    stream_contracts: Mapping[str, str]
    validation_mode: ValidationMode
    require_contract: bool
    batch_size_rows: int
    batch_max_bytes: int
    commit_interval_seconds: float
    load_method: str  # singer-sdk declares it: append-only, upsert or overwrite
    schema_evolution: SchemaEvolution
    hard_delete: bool
    process_activate_version_messages: bool
    target_file_size_mb: int
    compression: Compression
    max_state_lag_seconds: float
    progress_interval_seconds: float
    max_record_bytes: int
    batch_files: BatchFilePolicy  # batch_roots, batch_max_file_bytes
    max_open_files: int
    metrics: MetricsSettings
    audit_log_path: Path | None
    format: OutputFormat
    markdown_kv: MarkdownKVSettings | None  # set when format is markdown_kv
    quality_sql_timeout_seconds: float
    anomaly_detection: bool
    anomaly_k: float
    anomaly_window: int
    anomaly_min_loads: int
    encryption_classifications: tuple[str, ...] = ("restricted",)
    """Lower-cased: contract columns of these classifications are stored encrypted."""
    keyring: Keyring | None = None
    """``encryption_keys`` resolved (``None``: no keys, so no column may be encrypted)."""

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
        """Build settings from a config the schema has checked (unset or null keys take
        the schema's defaults), raising :class:`ConfigError` that names the bad key."""
        values = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
        tenant = check_tenant("tenant_id", values.get("tenant_id"))
        # Meltano passes declared but unset catalog.* settings as nulls: still the default.
        catalog = catalog_properties(values.get("catalog"))
        if "warehouse" not in catalog and catalog.get("type", "sql") == "sql":
            raise ConfigError("catalog.warehouse: a SQL catalog needs a warehouse location")
        contracts_dir = values.get("contracts_dir")
        if contracts_dir is not None and not Path(contracts_dir).is_dir():
            raise ConfigError(f"contracts_dir: {contracts_dir} is not a directory")
        if values.get("add_record_metadata"):
            raise ConfigError(
                "add_record_metadata: not supported; the contract defines the table's "
                "columns, so declare any _sdc_* columns you want to keep in the contract"
            )
        # singer-sdk's default is its enum member: the plain value, for messages and logs
        load_method = TargetLoadMethods(values["load_method"]).value
        output_format, markdown_kv = _output_format(values, catalog, load_method)
        anomaly_k, anomaly_window, anomaly_min_loads = _anomaly(values)
        return cls(
            tenant_id=tenant,
            catalog=catalog,
            contracts_dir=Path(contracts_dir) if contracts_dir else None,
            stream_contracts=dict(values.get("stream_contracts") or {}),
            validation_mode=values["validation_mode"],
            require_contract=values["require_contract"],
            batch_size_rows=_positive_int(values, "batch_size_rows"),
            batch_max_bytes=_positive_int(values, "batch_max_bytes"),
            commit_interval_seconds=_seconds(values, "commit_interval_seconds",
                                             "0 commits every batch"),
            load_method=load_method,
            schema_evolution=values["schema_evolution"],
            hard_delete=values["hard_delete"],
            process_activate_version_messages=values["process_activate_version_messages"],
            target_file_size_mb=_positive_int(values, "target_file_size_mb"),
            compression=values["compression"],
            max_state_lag_seconds=_seconds(values, "max_state_lag_seconds",
                                           "0 closes open data files at every commit"),
            # the schema's minimum is 0 (0 logs only the final lines)
            progress_interval_seconds=float(values["progress_interval_seconds"]),
            max_record_bytes=_record_bytes(values),
            batch_files=BatchFilePolicy.from_config(values.get("batch_roots"),
                                                    values.get("batch_max_file_bytes")),
            max_open_files=_max_open_files(values),
            metrics=MetricsSettings.from_config(values.get("metrics")),
            audit_log_path=Path(values["audit_log_path"]) if values.get("audit_log_path")
            else None,
            format=output_format,
            markdown_kv=markdown_kv,
            quality_sql_timeout_seconds=_quality_timeout(values),
            anomaly_detection=values["anomaly_detection"],
            anomaly_k=anomaly_k,
            anomaly_window=anomaly_window,
            anomaly_min_loads=anomaly_min_loads,
            encryption_classifications=_classifications(values),
            keyring=_keyring(values),
        )


def _classifications(values: Mapping[str, Any]) -> tuple[str, ...]:
    raw = values["encryption_classifications"]
    blank = [c for c in raw if not str(c).strip()]
    if blank:
        raise ConfigError("encryption_classifications: a classification is empty; list "
                          "contract classifications such as restricted")
    return tuple(dict.fromkeys(str(c).strip().lower() for c in raw))


def _keyring(values: Mapping[str, Any]) -> Keyring | None:
    """The keyring of ``encryption_keys``, each key resolved now (a missing variable,
    file or Vault secret stops the run before any input is read).

    Raises:
        ConfigError: A key cannot be resolved, or ``encryption_active_key`` names no key.
    """
    keys = values.get("encryption_keys") or None
    active = values.get("encryption_active_key") or None
    if keys is None and active is None:
        return None  # cryptography's AES-SIV and key providers are not even imported
    from dativo.crypto import Keyring
    from dativo.logs import register_secrets

    if isinstance(keys, Mapping):
        register_secrets(str(v) for v in keys.values())  # a key given literally
    return Keyring.from_settings(keys, active)


def _output_format(values: Mapping[str, Any], catalog: Mapping[str, str], load_method: str
                   ) -> tuple[OutputFormat, MarkdownKVSettings | None]:
    """``format`` and, for ``markdown_kv``, its checked ``markdown_kv.*`` settings."""
    raw = values.get("markdown_kv")
    if values["format"] == "parquet":
        if isinstance(raw, Mapping) and any(v is not None for v in raw.values()):
            raise ConfigError("markdown_kv: only used with format: markdown_kv; set format "
                              "or remove markdown_kv")
        return "parquet", None
    return "markdown_kv", MarkdownKVSettings.from_config(
        raw, warehouse=catalog.get("warehouse", ""), load_method=load_method)


def _anomaly(values: Mapping[str, Any]) -> tuple[float, int, int]:
    """``anomaly_k``, ``anomaly_window`` and ``anomaly_min_loads``, checked together."""
    k = float(values["anomaly_k"])  # singer-sdk parses fractions as Decimal
    if not 0 < k < math.inf:
        raise ConfigError(f"anomaly_k: {values['anomaly_k']!r} must be a number > 0; 3 "
                          "(the default) flags a value more than about three standard "
                          "deviations from the usual, a higher k flags less")
    window, min_loads = values["anomaly_window"], values["anomaly_min_loads"]
    if min_loads < MIN_ANOMALY_LOADS:
        raise ConfigError(f"anomaly_min_loads: {min_loads!r} must be at least "
                          f"{MIN_ANOMALY_LOADS}: the median of fewer loads says little "
                          "about the usual value")
    if window < min_loads:
        raise ConfigError(f"anomaly_window: {window!r} is less than anomaly_min_loads "
                          f"({min_loads}), so no band would ever have enough loads; raise "
                          "anomaly_window or lower anomaly_min_loads")
    if window > MAX_ANOMALY_WINDOW:
        raise ConfigError(f"anomaly_window: {window!r} must be at most {MAX_ANOMALY_WINDOW}: "
                          "the band's loads are read back from <table>__quality at every "
                          "commit (the default is 20)")
    return k, int(window), int(min_loads)


def _quality_timeout(values: Mapping[str, Any]) -> float:
    value = float(values["quality_sql_timeout_seconds"])  # Decimal from singer-sdk
    if not 0 < value < float("inf"):
        raise ConfigError(f"quality_sql_timeout_seconds: {value!r} must be a number of "
                          "seconds > 0 (the default 30 stops a quality query that runs "
                          "longer)")
    return value


def _seconds(values: Mapping[str, Any], key: str, zero: str) -> float:
    value = values[key]
    if value < 0:
        raise ConfigError(f"{key}: {value!r} must be a number of seconds >= 0 ({zero})")
    return float(value)  # singer-sdk parses JSON numbers with fractions as Decimal


def _max_open_files(values: Mapping[str, Any]) -> int:
    """``max_open_files``, which must leave the reserve under the process's limit."""
    if values.get("max_open_files") is None:  # the default fits under any limit
        return default_max_open_files()
    value = _positive_int(values, "max_open_files")
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


def _record_bytes(values: Mapping[str, Any]) -> int:
    value = _positive_int(values, "max_record_bytes")
    if not MIN_RECORD_BYTES <= value <= MAX_RECORD_BYTES_CEILING:
        raise ConfigError(f"max_record_bytes: {value} must be between {MIN_RECORD_BYTES} and "
                          f"{MAX_RECORD_BYTES_CEILING} bytes (1 MiB to 256 MiB, the most the "
                          "JSON readers take)")
    return value


def _positive_int(values: Mapping[str, Any], key: str) -> int:
    value = values[key]
    if value <= 0:
        raise ConfigError(f"{key}: {value!r} must be a positive integer")
    return int(value)
