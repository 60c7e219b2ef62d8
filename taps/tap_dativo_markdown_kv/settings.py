"""Parse and check the tap's ``files`` entries beyond what the JSON Schema expresses.

singer-sdk validates the config against the schema and fills in its defaults; each
error of the checks here names the key to edit (``files[1].keys: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from dativo.errors import ConfigError
from dativo.file_taps import FileEntry, check_encoding, parse_file_entries
from dativo.markdown_kv import Dialect

DialectSetting = Literal["auto", Dialect]
Emit = Literal["records", "row_per_kv"]
DIALECT_SETTINGS: tuple[DialectSetting, ...] = get_args(DialectSetting)
EMITS: tuple[Emit, ...] = get_args(Emit)


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


def parse_files(config: Mapping[str, Any], schema: Mapping[str, Any]
                ) -> list[FileSettings]:
    """Return every ``files`` entry of the validated ``config``, checked (``schema`` is
    the tap's, see parse_file_entries).

    Raises:
        ConfigError: An entry is inconsistent; the message names the key.
    """
    return list(parse_file_entries(config, schema, _parse_entry))


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
