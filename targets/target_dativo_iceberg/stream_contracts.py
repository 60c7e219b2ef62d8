"""Pick the contract for a stream (its ODCS file, else its Singer SCHEMA) and the table
it lands in, one stream per table."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dativo.contracts import (
    Contract,
    contract_from_singer_schema,
    load_contract,
    resolve_contract_path,
)
from dativo.contracts.resolve import CONTRACT_SUFFIX
from dativo.errors import CodecError, ConfigError
from dativo.iceberg.naming import table_identifier
from dativo.names import rejected_parent, table_name
from dativo.rejected_rows import is_rejected_rows_schema
from target_dativo_iceberg.config_schema import SchemaEvolution
from target_dativo_iceberg.settings import TargetSettings

LOGGER = logging.getLogger(__name__)


def contract_for_stream(
    settings: TargetSettings, stream: str, schema: dict[str, Any], key_properties: list[str],
    streams: Collection[str] = (),
) -> Contract:
    """Resolve, lint and load the stream's contract (README: the target's
    ``contracts_dir`` setting).

    ``streams`` are those with a SCHEMA earlier in the run (see
    :func:`_rejected_rows_contract` for why).

    Raises:
        CodecError: The stream's name cannot name a table (see :func:`table_name`).
        ConfigError: The contract is invalid or belongs to another tenant.
    """
    try:
        table_name(stream)
    except ConfigError as exc:
        raise CodecError(f"SCHEMA for stream {stream!r}: {exc}") from exc
    path = resolve_contract_path(
        stream,
        tenant_id=settings.tenant_id,
        contracts_dir=settings.contracts_dir,
        stream_contracts=settings.stream_contracts,
    )
    if (path is None and rejected_parent(stream) in streams
            and is_rejected_rows_schema(schema)):
        return _rejected_rows_contract(settings, stream, schema, key_properties)
    if path is None:
        _check_contract_optional(settings, stream)
        LOGGER.warning(
            "No ODCS contract for stream '%s' (looked in %s); using its Singer SCHEMA "
            "as the contract", stream,
            settings.contracts_dir / settings.tenant_id if settings.contracts_dir else "nowhere",
        )
        return contract_from_singer_schema(stream, schema, key_properties)
    _refuse_other_tenant(settings, stream, path)
    contract = load_contract(path, object_name=stream.split("-")[-1])
    LOGGER.info("Stream '%s' uses contract %s (version %s)", stream, path, contract.version)
    return contract


def _rejected_rows_contract(settings: TargetSettings, stream: str, schema: dict[str, Any],
                            key_properties: list[str]) -> Contract:
    """``<x>__rejected`` (a tap's rows that contradicted its SCHEMA, as raw text and
    reason) needs no ODCS contract in any mode: its SCHEMA is the contract, as there is
    nothing in it to check. It lands beside ``x``'s table (same domain, table
    ``<x>_rejected``), so the rows can be fixed and re-sent.

    Only a stream that is one: its SCHEMA is exactly tap-dativo-csv's rejected-row
    SCHEMA and ``x`` is a stream of the run. Any other ``__rejected`` stream (a
    third-party tap's, a misnamed one) follows the contract rules like every stream."""
    parent = rejected_parent(stream) or stream
    contract = contract_from_singer_schema(stream, schema, key_properties)
    parent_path = resolve_contract_path(parent, tenant_id=settings.tenant_id,
                                        contracts_dir=settings.contracts_dir,
                                        stream_contracts=settings.stream_contracts)
    if parent_path is not None:
        domain = load_contract(parent_path, object_name=parent.split("-")[-1]).domain
        contract = replace(contract, domain=domain)
    LOGGER.info("Stream '%s' holds the rows a tap rejected from stream '%s' (raw text and "
                "reason); loaded as its SCHEMA says, no contract needed", stream, parent)
    return contract


def _check_contract_optional(settings: TargetSettings, stream: str) -> None:
    """A stream may go without a contract only in ``warn`` mode (or with no
    ``contracts_dir``), and never with ``require_contract``: a contract missing from a
    contracts folder is otherwise a misnamed file, and the rows would land unchecked.

    Raises:
        ConfigError: The stream needs a contract; the message says where it was looked
            for and the ways out.
    """
    if settings.require_contract:
        why = "require_contract is set"
        way_out = "or unset require_contract"
    elif settings.contracts_dir is not None and settings.validation_mode == "strict":
        why = "validation_mode is strict and contracts_dir is set"
        way_out = "or set validation_mode: warn to load it typed by its Singer SCHEMA"
    else:
        return
    if settings.contracts_dir is None:
        looked = "contracts_dir is not set"
    else:
        names = sorted({stream, stream.split("-")[-1]})
        files = " or ".join(f"{n}{CONTRACT_SUFFIX}" for n in names)
        looked = f"looked for {files} under {settings.contracts_dir / settings.tenant_id}/*/"
    raise ConfigError(
        f"stream '{stream}': no ODCS contract ({looked}) and {why}; add the contract, map "
        f"the stream to its file in stream_contracts, {way_out}")


def with_schema_only_columns(stream: str, schema: dict[str, Any],
                              contract: Contract) -> Contract:
    """``evolve``: SCHEMA columns the contract lacks join the table, typed by the SCHEMA,
    nullable and unchecked (the contract has no rules for them)."""
    known = {f.name for f in contract.fields}
    extra = {name: prop for name, prop in (schema.get("properties") or {}).items()
             if name not in known}
    if not extra:
        return contract
    added = contract_from_singer_schema(stream, {"properties": extra}, []).fields
    LOGGER.info("Stream '%s': schema_evolution=evolve adds column(s) %s from the SCHEMA",
                stream, ", ".join(f.name for f in added))
    return replace(contract, fields=contract.fields + added)


SCHEMA_ONLY_FATE = {
    "discard_columns": "so they are not loaded; add them to the contract to keep them",
    "evolve": "so schema_evolution=evolve adds them to the table, unchecked",
    "freeze": "so schema_evolution=freeze sends records with a value in them to the "
              "dead-letter table; add them to the contract to accept them",
}


def schema_drift(stream: str, schema: dict[str, Any], contract: Contract,
                 evolution: SchemaEvolution) -> dict[str, list[str]]:
    """Columns the tap's SCHEMA and the ODCS contract disagree on, logged once.

    SCHEMA-only columns meet the fate ``evolution`` gives them; contract-only columns
    stay null (or are rejected when required).
    """
    if not contract.is_odcs:
        return {}
    declared = set(schema.get("properties") or {})
    contracted = {f.name for f in contract.fields}
    drift = {"schema_only": sorted(declared - contracted),
             "contract_only": sorted(contracted - declared)}
    drift = {k: v for k, v in drift.items() if v}
    if "schema_only" in drift:
        LOGGER.warning(
            "Stream '%s': column(s) %s are in the SCHEMA but not in contract %s, %s",
            stream, ", ".join(drift["schema_only"]), contract.source,
            SCHEMA_ONLY_FATE[evolution],
        )
    if "contract_only" in drift:
        LOGGER.warning(
            "Stream '%s': contract column(s) %s are missing from the SCHEMA; records "
            "without them get nulls, or are rejected where the contract requires them",
            stream, ", ".join(drift["contract_only"]),
        )
    return drift


def _refuse_other_tenant(settings: TargetSettings, stream: str, path: Path) -> None:
    if settings.contracts_dir is None:
        return
    root = settings.contracts_dir.resolve()
    resolved = path.resolve()
    if resolved.is_relative_to(root) and not resolved.is_relative_to(root / settings.tenant_id):
        raise ConfigError(
            f"stream_contracts.{stream}: {path} is in another tenant's contracts folder; "
            f"tenant {settings.tenant_id!r} may only use contracts under "
            f"{root / settings.tenant_id}"
        )


def stream_keys(stream: str, contract: Contract, key_properties: Sequence[str],
                needed_by: str) -> tuple[str, ...]:
    """The contract's primary key, else the SCHEMA's ``key_properties``.

    Raises:
        ConfigError: ``needed_by`` (a setting) needs a key and the stream has none, or a
            key column is not in the contract.
    """
    keys = contract.primary_key or tuple(key_properties)
    if not keys:
        raise ConfigError(
            f"{needed_by} needs a key for stream '{stream}': mark the primary key in "
            f"contract {contract.source} (primaryKey: true) or have the tap send "
            "key_properties in its SCHEMA")
    unknown = [k for k in keys if k not in {f.name for f in contract.fields}]
    if unknown:
        raise ConfigError(
            f"{needed_by}: key column(s) {', '.join(unknown)} of stream '{stream}' are "
            f"not in contract {contract.source}; add them to it")
    return keys


class StreamTables:
    """The table each stream of a run writes to, so two streams never share one: their
    rows, dead letters and bookmarks would mix (``a/b`` and ``a.b``, ``Users`` and
    ``users``, or two streams mapped to one contract)."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._owners: dict[tuple[str, ...], str] = {}

    def claim(self, stream: str, contract: Contract) -> tuple[str, ...]:
        """Record that ``stream`` writes to its contract's table; return the identifier.

        Raises:
            CodecError: Another stream of this run already writes to that table.
            ConfigError: The contract belongs to another tenant, or one of its names
                breaks the naming rule.
        """
        identifier = table_identifier(self.tenant_id, contract)
        owner = self._owners.setdefault(identifier, stream)
        if owner != stream:
            raise CodecError(
                f"streams {owner!r} and {stream!r} would both land in table "
                f"{'.'.join(identifier)} (table names keep letters and digits, lower-cased; "
                "see README.md, Table names); rename one of them with a stream map "
                "(__alias__) or give each its own contract")
        return identifier
