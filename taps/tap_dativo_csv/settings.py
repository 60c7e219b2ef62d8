"""Parse and check the tap's config beyond what its JSON Schema can express.

singer-sdk validates the config against the schema and fills in its defaults; the checks
here are the cross-field ones, and each error names the offending key
(``files[1].columns: ...``) so the user knows what to edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dativo.contracts import resolve_contract_path
from dativo.errors import ConfigError
from dativo.file_taps import FileEntry, check_encoding, parse_file_entries
from tap_dativo_csv.files import Dialect


@dataclass(frozen=True, slots=True)
class FileSettings(FileEntry):
    """One ``files`` entry with its defaults applied."""

    keys: tuple[str, ...]
    dialect: Dialect
    header: bool
    columns: tuple[str, ...] | None
    contract: Path | None


def parse_files(config: Mapping[str, Any], schema: Mapping[str, Any]
                ) -> list[FileSettings]:
    """Return every ``files`` entry of the validated ``config``, checked, with its
    contract looked up (``schema`` is the tap's, see parse_file_entries).

    Raises:
        ConfigError: An entry is inconsistent; the message names the key.
    """
    contracts_dir, tenant_id = _contract_lookup(config)
    parsed: list[FileSettings] = []
    for item in parse_file_entries(config, schema, _parse_entry):
        if item.contract is None and contracts_dir is not None:
            found = resolve_contract_path(item.entity, tenant_id=tenant_id or "",
                                          contracts_dir=contracts_dir, stream_contracts={})
            item = replace(item, contract=found)
        if item.contract is None and config.get("require_contract"):
            looked = (f"none found under {contracts_dir / (tenant_id or '')}/*/"
                      if contracts_dir is not None else "contracts_dir is not set")
            raise ConfigError(
                f"{item.where}: stream '{item.entity}' has no ODCS contract ({looked}) and "
                f"require_contract is set; add {item.entity}.odcs.yaml there, set "
                f"{item.where}.contract, or unset require_contract")
        parsed.append(item)
    return parsed


def _contract_lookup(config: Mapping[str, Any]) -> tuple[Path | None, str | None]:
    raw_dir, tenant_id = config.get("contracts_dir"), config.get("tenant_id")
    if not raw_dir:
        return None, tenant_id
    if not tenant_id:
        raise ConfigError("tenant_id: required when contracts_dir is set (contracts are "
                          "looked up under <contracts_dir>/<tenant_id>/<domain>/)")
    if not Path(raw_dir).is_dir():
        raise ConfigError(f"contracts_dir: {raw_dir} is not a directory")
    return Path(raw_dir), tenant_id


def _parse_entry(index: int, entry: Mapping[str, Any]) -> FileSettings:
    """One entry with its defaults (see parse_file_entries)."""
    where = f"files[{index}]"
    dialect = _dialect(where, entry)
    header = entry["header"]
    columns = _names(where, "columns", entry.get("columns"))
    if not header and not columns:
        raise ConfigError(f"{where}.columns: header is false, so list the column names "
                          "in order (columns: [id, name, ...])")
    contract = entry.get("contract")
    if contract and not Path(contract).is_file():
        raise ConfigError(f"{where}.contract: contract file {contract} does not exist")
    return FileSettings(
        index=index,
        entity=entry["entity"],
        path=entry["path"],
        keys=_names(where, "keys", entry.get("keys")) or (),
        dialect=dialect,
        header=header,
        columns=columns,
        contract=Path(contract) if contract else None,
    )


def _dialect(where: str, entry: Mapping[str, Any]) -> Dialect:
    dialect = Dialect(delimiter=entry["delimiter"], quotechar=entry["quotechar"],
                      encoding=entry["encoding"])
    for key in ("delimiter", "quotechar"):
        value = getattr(dialect, key)
        if len(value) != 1 or value in "\r\n":
            raise ConfigError(f"{where}.{key}: must be exactly one character other than a "
                              f"line break, got {value!r}")
    if dialect.delimiter == dialect.quotechar:
        raise ConfigError(f"{where}.quotechar: must differ from the delimiter")
    check_encoding(where, dialect.encoding)
    return dialect


def _names(where: str, key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(value)
    if any(not name for name in names):
        raise ConfigError(f"{where}.{key}: column names must not be empty")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.{key}: column names must be unique, got {list(names)}")
    return names
