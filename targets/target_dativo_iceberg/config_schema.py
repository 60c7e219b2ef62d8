"""target-dativo-iceberg's settings as singer-sdk declares them.

Each setting's name, type, choices and default are written here once: ``--about``,
Meltano and the config check (:mod:`dativo.schema_messages`) read this schema, and
:class:`~target_dativo_iceberg.settings.TargetSettings` takes its defaults from it, so
its own checks are only those a schema cannot state (ranges with advice, rules that span
settings, the machine's limits).
"""

from __future__ import annotations

from typing import Literal, get_args

from singer_sdk import typing as th

from dativo.iceberg.file_defaults import COMPRESSION, TARGET_FILE_SIZE_MB
from dativo.markdown_kv import DIALECTS
from dativo.observability_settings import log_format_setting, metrics_setting
from dativo.progress import DEFAULT_INTERVAL_SECONDS
from dativo.quality.anomaly import DEFAULT_K, DEFAULT_MIN_LOADS, DEFAULT_WINDOW
from target_dativo_iceberg.batch_roots import DEFAULT_BATCH_MAX_FILE_BYTES, DEFAULT_BATCH_ROOTS

# The closed vocabularies: each setting's choices, and the type of its value.
ValidationMode = Literal["strict", "warn"]
SchemaEvolution = Literal["discard_columns", "evolve", "freeze"]
Compression = Literal["zstd", "snappy", "gzip", "lz4", "uncompressed"]
OutputFormat = Literal["parquet", "markdown_kv"]
Storage = Literal["string", "raw_file", "structured"]  # markdown_kv.storage
Layout = Literal["row_per_kv", "document_level"]  # markdown_kv.layout

DEFAULT_BATCH_SIZE_ROWS = 200_000
DEFAULT_BATCH_MAX_BYTES = 128 * 1024 * 1024
DEFAULT_COMMIT_INTERVAL_SECONDS = 10.0
DEFAULT_MAX_STATE_LAG_SECONDS = 60.0
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024

# The catalog properties most setups need, declared so that each has a Meltano setting
# and environment variable (TARGET_DATIVO_ICEBERG_CATALOG_URI, ..._CATALOG_S3_ENDPOINT);
# the names are pyiceberg's own, and any other pyiceberg property passes through.
CATALOG_PROPERTIES = (
    th.Property("name", th.StringType,
                description="Catalog name (pyiceberg's PYICEBERG_CATALOG__<NAME>__* "
                            "variables use it)."),
    th.Property("type", th.StringType,
                description="pyiceberg catalog type (sql, rest, glue, hive, ...)."),
    th.Property("uri", th.StringType, secret=True,
                description="Catalog URI: SQLAlchemy URL of a SqlCatalog, REST endpoint, ..."),
    th.Property("warehouse", th.StringType,
                description="Warehouse location (file:// or s3://bucket/prefix) or REST "
                            "warehouse name."),
    th.Property("credential", th.StringType, secret=True,
                description="REST catalog OAuth2 client credential (client_id:client_secret)."),
    th.Property("token", th.StringType, secret=True,
                description="REST catalog bearer token."),
    th.Property("s3.endpoint", th.StringType,
                description="S3-compatible endpoint URL (MinIO, SeaweedFS, ...); unset for "
                            "AWS."),
    th.Property("s3.region", th.StringType, description="S3 region."),
    th.Property("s3.access-key-id", th.StringType,
                description="S3 access key id (unset to use the AWS_* variables or the "
                            "instance role)."),
    th.Property("s3.secret-access-key", th.StringType, secret=True,
                description="S3 secret access key."),
)


CONFIG_SCHEMA = th.PropertiesList(
    th.Property("tenant_id", th.StringType, required=True,
                description="Tenant: picks the contracts subtree, the Iceberg namespace "
                            "prefix and the warehouse prefix."),
    th.Property("catalog", th.ObjectType(*CATALOG_PROPERTIES, additional_properties=True),
                description="pyiceberg catalog properties, passed through (name, type, uri, "
                            "warehouse, s3.*, ...). Default: SQLite SqlCatalog under "
                            "./output/warehouse."),
    th.Property("contracts_dir", th.StringType,
                description="Root of ODCS contracts laid out as "
                            "<tenant>/<domain>/<table>.odcs.yaml."),
    th.Property("stream_contracts", th.ObjectType(additional_properties=th.StringType),
                description="Explicit stream -> contract file map; overrides the lookup "
                            "in contracts_dir."),
    th.Property("require_contract", th.BooleanType, default=False,
                description="Every stream must have an ODCS contract (in contracts_dir "
                            "or stream_contracts), in any validation_mode; a stream "
                            "without one stops the run (exit 2) before anything is "
                            "written. validation_mode strict already requires one when "
                            "contracts_dir is set."),
    th.Property("validation_mode", th.StringType, default="strict",
                allowed_values=list(get_args(ValidationMode)),
                description="strict: a batch with a rejected record is not loaded "
                            "and no STATE after it is emitted; the run stops with exit 2, "
                            "and the rerun resumes before that batch. warn: load the valid "
                            "records, log and count the rejects, move the bookmark on. "
                            "Rejected records always go to the dead-letter table."),
    th.Property("batch_size_rows", th.IntegerType, default=DEFAULT_BATCH_SIZE_ROWS,
                description="Check and write a stream's records as data files after this "
                            "many records."),
    th.Property("batch_max_bytes", th.IntegerType, default=DEFAULT_BATCH_MAX_BYTES,
                description="Check and write a stream's records after this many bytes "
                            "of buffered records, if batch_size_rows is not reached "
                            "first."),
    th.Property("batch_roots", th.ArrayType(th.StringType),
                default=list(DEFAULT_BATCH_ROOTS),
                description="BATCH messages may name files only under these: local "
                            "directories (paths or file:// URIs; relative ones resolve "
                            "against the target's working directory, under Meltano the "
                            "project root) and s3://bucket/"
                            "prefix URIs. Symlinks and '..' are resolved first; "
                            "anything else is refused (exit 2). Setting it replaces "
                            "the default ./output/batches, the taps' default "
                            "batch_config.storage.root."),
    th.Property("batch_max_file_bytes", th.IntegerType,
                default=DEFAULT_BATCH_MAX_FILE_BYTES,
                description="Largest BATCH file read (bytes on storage, and inflated "
                            "for gzip jsonl); a bigger one is refused (exit 2). Only "
                            "regular files are read."),
    th.Property("schema_evolution", th.StringType, default="discard_columns",
                allowed_values=list(get_args(SchemaEvolution)),
                description="SCHEMA columns the contract lacks: discard_columns drops "
                            "them with one warning; evolve adds them to the table, typed "
                            "by the SCHEMA; freeze sends records with a value in a "
                            "column outside the contract to the dead-letter table."),
    th.Property("target_file_size_mb", th.IntegerType,
                default=TARGET_FILE_SIZE_MB,
                description="Parquet data files span batches and close at this size "
                            "(MiB on storage); set as the table's "
                            "write.target-file-size-bytes."),
    th.Property("compression", th.StringType, default=COMPRESSION,
                allowed_values=list(get_args(Compression)),
                description="Parquet compression codec (write.parquet.compression-codec)."),
    th.Property("max_state_lag_seconds", th.NumberType,
                default=DEFAULT_MAX_STATE_LAG_SECONDS,
                description="Longest a STATE waits for open data files to fill up; then "
                            "they are closed smaller and committed, so the bookmark "
                            "moves on."),
    th.Property("max_record_bytes", th.IntegerType, default=DEFAULT_MAX_RECORD_BYTES,
                description="A RECORD line longer than this (bytes, 1 MiB to 256 MiB) is "
                            "never held whole in memory: its dead-letter row (rule "
                            "maxRecordBytes) keeps its size and first 1 KiB, and the "
                            "run goes on. Any other message that long stops the run."),
    th.Property("max_open_files", th.IntegerType,
                description="Most spool and data files held open at once (half each): "
                            "idle ones are closed, least recently used first, so a run "
                            "of any number of streams stays under ulimit -n. Default: "
                            "the open-file limit less 64, at most 512."),
    th.Property("hard_delete", th.BooleanType, default=False,
                description="ACTIVATE_VERSION: delete the rows of older table versions "
                            "(true) or set their _sdc_deleted_at (false)."),
    metrics_setting(description="Prometheus metrics export (see observability/).",
                    pushgateway_url="Push the run's metrics here at the end (batch jobs).",
                    prom_file="target-dativo-iceberg.prom"),
    log_format_setting("text for humans, json for log pipelines (one object per line). "
                       "Secrets are redacted in both."),
    th.Property("audit_log_path", th.StringType,
                description="Append one JSON line per commit (run, table, snapshot, "
                            "rows, files; never record values) to this file."),
    th.Property("encryption_keys", th.ObjectType(additional_properties=th.StringType),
                secret=True,
                description="Column encryption keyring: key id -> key (32 random bytes, "
                            "base64; `dativo keys new` makes one), each given as a secret "
                            "reference (env:NAME, file:/path, vault:path#key, kms:...). "
                            "Contract columns whose classification is in "
                            "encryption_classifications, or that have an encryptedName, "
                            "are stored encrypted; such a contract without keys stops "
                            "the run (exit 2)."),
    th.Property("encryption_active_key", th.StringType,
                description="The key id of encryption_keys that encrypts new values "
                            "(older ones still decrypt); required with more than one "
                            "key."),
    th.Property("encryption_classifications", th.ArrayType(th.StringType),
                default=["restricted"],
                description="Contract classifications (case-insensitive) whose columns "
                            "are stored encrypted."),
    th.Property("format", th.StringType, default="parquet",
                allowed_values=list(get_args(OutputFormat)),
                description="parquet: the stream's table, typed by the contract. "
                            "markdown_kv: the records as Markdown-KV documents for LLM "
                            "pipelines, stored as markdown_kv.storage says (same "
                            "contract checks, dead letters and STATE handling)."),
    th.Property("markdown_kv", th.ObjectType(
        th.Property("storage", th.StringType, default="string",
                    allowed_values=list(get_args(Storage)),
                    description="string: table <table>__markdown, one row (doc_id, "
                                "stream, markdown, source_bookmark, extracted_at) per "
                                "record. raw_file: .md files at path_pattern plus the "
                                "manifest table <table>__md_files. structured: "
                                "<table>__kv (row_per_kv) or <table>__documents "
                                "(document_level)."),
        th.Property("dialect", th.StringType, default="record_blocks",
                    allowed_values=list(DIALECTS),
                    description="record_blocks: '## Record <doc_id>' and a fenced block "
                                "of 'key: value' lines. sectioned: YAML front matter "
                                "with doc_id, a '# <stream>' section, 'key:: value'."),
        th.Property("layout", th.StringType, default="row_per_kv",
                    allowed_values=list(get_args(Layout)),
                    description="structured storage: one row per key (doc_id, section, "
                                "key, value, value_json, ord), or one row per document "
                                "with a nested sections column."),
        th.Property("path_pattern", th.StringType,
                    default="markdown_kv/{tenant}/{stream}/{doc_id}.md",
                    description="raw_file: file path under root, with {tenant}, "
                                "{stream}, {doc_id} (a batch file's first document) "
                                "and {date} (UTC day of writing)."),
        th.Property("records_per_file", th.IntegerType, default=1,
                    description="raw_file: 1 writes a file per record; N > 1 one file "
                                "per N records of a batch (record_blocks only)."),
        th.Property("root", th.StringType,
                    description="raw_file: location URI the path_pattern is under "
                                "(file:// or s3://); default the catalog's warehouse."),
        additional_properties=False,
    ), description="How format: markdown_kv stores documents (see "
                    "docs/markdown-kv-storage.md)."),
    th.Property("commit_interval_seconds", th.NumberType,
                default=DEFAULT_COMMIT_INTERVAL_SECONDS,
                description="Commit written data files (one snapshot per table) and emit "
                            "the STATE they cover at most this often; 0 commits every "
                            "batch. Input slower than a batch per interval is committed "
                            "on a timer once it has waited this long (at least 1 s), "
                            "without waiting for more input. End of input always "
                            "commits."),
    th.Property("progress_interval_seconds", th.NumberType(minimum=0),
                default=DEFAULT_INTERVAL_SECONDS,
                description="Every this many seconds, log one progress line per stream "
                            "whose counts changed (records received, committed, "
                            "rejected, rows/s, last committed snapshot); one final line "
                            "per stream at the end. 0 logs only the final lines."),
    th.Property("anomaly_detection", th.BooleanType, default=True,
                description="Profile every load (row count, reject ratio, per column "
                            "null ratio, distinct estimate, min/max) in "
                            "<table>__quality and flag anomalies (see anomaly_k). false: "
                            "a table whose contract has no quality rules gets no gate and "
                            "no <table>__quality (the cheapest commit, for runs of many "
                            "streams); a table with rules still records its rules' "
                            "results, without profile or flags."),
    th.Property("anomaly_k", th.NumberType, default=DEFAULT_K,
                description="Anomaly detection (no configuration needed): each load's "
                            "row count, reject ratio and per column null ratio, distinct "
                            "estimate and min/max are compared with the last "
                            "anomaly_window loads; a value outside median +- k times the "
                            "MAD (scaled to a standard deviation) is flagged in "
                            "<table>__quality. Higher flags less; > 0. A flag stops a "
                            "strict run only if the contract opts in (customProperties "
                            "anomaly: block)."),
    th.Property("anomaly_window", th.IntegerType, default=DEFAULT_WINDOW,
                description="How many earlier loads of a table the anomaly band is "
                            "computed over (the most recent ones); anomaly_min_loads to "
                            "1000."),
    th.Property("anomaly_min_loads", th.IntegerType, default=DEFAULT_MIN_LOADS,
                description="No anomaly is flagged until a table has this many earlier "
                            "loads with the metric; 3 to anomaly_window."),
    th.Property("quality_sql_timeout_seconds", th.NumberType, default=30,
                description="Time limit of each data-quality query (a contract's type: "
                            "sql rule, or the one query of its library rules); a query "
                            "still running is stopped and its rule fails, naming this "
                            "setting. > 0."),
    # singer-sdk's text ("Whether to add metadata fields to records.") promises what
    # this target refuses (settings.py), so it is declared here to say so.
    th.Property("add_record_metadata", th.BooleanType, title="Add Record Metadata",
                description="Not supported: true is refused (exit 2), because the "
                            "contract defines the table's columns; declare the _sdc_* "
                            "columns to keep in the contract."),
)
