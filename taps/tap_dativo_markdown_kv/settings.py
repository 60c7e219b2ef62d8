"""The tap's ``files`` setting: its schema, and the checks the schema cannot express.

singer-sdk validates the config against the schema and fills in its defaults; each
error of the checks here names the key to edit (``files[1].keys: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from singer_sdk import typing as th

from dativo.errors import ConfigError
from dativo.file_taps import FileEntry, check_encoding, files_setting, parse_file_entries
from dativo.markdown_kv import Dialect

DialectSetting = Literal["auto", Dialect]
Emit = Literal["records", "row_per_kv"]

_ENTRY_PROPERTIES = (  # after entity and path, see files_setting
    th.Property("dialect", th.StringType, default="auto",
                allowed_values=list(get_args(DialectSetting)),
                description="`record_blocks` (`## Record <id>` + fenced `key: value`), "
                            "`sectioned` (front matter, `# sections`, `key:: value`), or "
                            "`auto`: detected per file."),
    th.Property("emit", th.StringType, default="records", allowed_values=list(get_args(Emit)),
                description="`records`: one record per `## Record` block, or per sectioned "
                            "document. `row_per_kv`: one row per key (doc_id, section, key, "
                            "value, value_json, ord)."),
    th.Property("keys", th.ArrayType(th.StringType),
                description="Primary-key columns of `records` (e.g. [_sdc_doc_id]); "
                            "row_per_kv is keyed by (doc_id, section, key)."),
    th.Property("schema", th.ObjectType(additional_properties=True),
                description="Declared JSON Schema per key ({\"id\": {\"type\": "
                            "[\"integer\"]}}), in column order. Default: inferred from "
                            "every matching file. A key outside it fails the run."),
    th.Property("encoding", th.StringType, default="utf-8",
                description="Python codec name of the files. A UTF-8 byte-order mark is "
                            "ignored."),
)

FILES = files_setting(*_ENTRY_PROPERTIES, streams="Markdown-KV",
                      keys="dialect (auto | record_blocks | sectioned), emit (records | "
                           "row_per_kv), keys, schema (declared JSON Schema per key; default "
                           "inferred from the files), encoding. See docs/tap-markdown-kv.md.")


@dataclass(frozen=True, slots=True)
class FileSettings(FileEntry):
    """One ``files`` entry with its defaults applied."""

    dialect: DialectSetting
    emit: Emit
    keys: tuple[str, ...]
    schema: dict[str, Any] | None
    encoding: str

    def fixed_dialect(self) -> Dialect | None:
        """The configured dialect, or None for ``auto`` (detected per file)."""
        return None if self.dialect == "auto" else self.dialect


def parse_files(config: Mapping[str, Any]) -> list[FileSettings]:
    """Return every ``files`` entry, checked.

    Raises:
        ConfigError: An entry is inconsistent; the message names the key.
    """
    return list(parse_file_entries(config, FILES, _parse_entry))


def _parse_entry(index: int, entry: Mapping[str, Any]) -> FileSettings:
    """One entry with its defaults (see parse_file_entries)."""
    where = f"files[{index}]"
    emit = entry["emit"]
    keys = tuple(entry.get("keys") or ())
    if emit == "row_per_kv" and keys:
        raise ConfigError(f"{where}.keys: row_per_kv rows are keyed by (doc_id, section, key); "
                          "remove keys")
    schema = entry.get("schema")
    if schema is not None and emit == "row_per_kv":
        raise ConfigError(f"{where}.schema: row_per_kv rows have a fixed schema; remove schema")
    if schema is not None and not all(isinstance(v, dict) for v in schema.values()):
        raise ConfigError(f"{where}.schema: map each key to a JSON Schema object, e.g. "
                          '{"id": {"type": ["integer"]}}')
    missing = [k for k in keys if schema is not None and k not in schema]
    if missing:
        raise ConfigError(f"{where}.keys: {missing} not declared in {where}.schema")
    encoding = check_encoding(where, entry["encoding"])
    return FileSettings(index=index, entity=entry["entity"], path=entry["path"],
                        dialect=entry["dialect"], emit=emit, keys=keys,
                        schema=dict(schema) if schema is not None else None,
                        encoding=encoding)
