"""A stream's encrypted columns (issue 19): what its contract asks for, checked once at its
SCHEMA, and what that changes on the way to the table.

Validation runs on the plaintext; the check thread then turns the valid rows' encrypted
columns into tokens (:meth:`StreamEncryption.encrypt_checked`) and the rejected records'
values too, so nothing after the check (data files, dead letters, Markdown-KV documents,
logs) ever holds the plaintext. The table is created and evolved in its stored shape
(:meth:`StreamEncryption.stored_contract`): encrypted columns under their stored names,
typed string, with no rule that would describe their values, and the table properties of
:meth:`~dativo.crypto.EncryptionPlan.table_properties` (no Iceberg min/max of them).

What the contract asks for that encryption cannot give is refused before anything is
written (:class:`~dativo.errors.ConfigError`, exit 2): partitioning by an encrypted
column (the partition values would be plaintext, or random), an upsert or document key
that is randomized (equal values would never match), a measured quality rule over an
encrypted column (the rules read the stored table, where it holds tokens), and a table
that already holds the column as plaintext, or holds it encrypted differently.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pyarrow as pa

from dativo.contracts import Contract, FieldSpec
from dativo.errors import ConfigError
from target_dativo_iceberg.batches import CheckedBatch, RejectedRecord

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dativo.crypto import ColumnCipher, EncryptionPlan, Keyring
    from dativo.iceberg.writer import IcebergWriter
    from target_dativo_iceberg.sinks import StreamSink

LOGGER = logging.getLogger(__name__)
PROPERTY_PREFIX = "dativo.encryption."
"""Table property of each encrypted column (:meth:`EncryptionPlan.table_properties`)."""


@dataclass
class StreamEncryption:
    """One stream's plan and the run's cipher (keyed by the run's keyring)."""

    stream: str
    plan: EncryptionPlan
    cipher: ColumnCipher
    _per_key: dict[str, ColumnCipher] = field(default_factory=dict, repr=False)

    # -- the check thread -----------------------------------------------------------
    def encrypt_checked(self, checked: CheckedBatch) -> CheckedBatch:
        """``checked`` with the valid rows' encrypted columns as tokens under their stored
        names, and each rejected record's encrypted fields as tokens."""
        rejected = [RejectedRecord(r.line_number,
                                   self.plan.encrypt_record_json(r.record_json, self.cipher),
                                   r.reasons) for r in checked.rejected]
        return CheckedBatch(self.plan.encrypt_table(checked.valid, self.cipher), rejected)

    # -- the stored table -----------------------------------------------------------
    def stored_contract(self, contract: Contract) -> Contract:
        """``contract`` describing the stored columns: an encrypted one keeps its stored
        name, nullability and primary-key position, is a string, and has no rule, format,
        example or description that could describe its values."""
        return replace(contract, fields=tuple(self._stored_field(f) for f in contract.fields))

    def _stored_field(self, spec: FieldSpec) -> FieldSpec:
        column = self.plan.column(spec.name)
        if column is None or column.name != spec.name:
            return spec
        return FieldSpec(column.stored_name, "string", required=spec.required,
                         primary_key_position=spec.primary_key_position)

    def stored_schema(self, schema: pa.Schema) -> pa.Schema:
        return self.plan.stored_schema(schema)

    def stored_names(self, names: Sequence[str]) -> tuple[str, ...]:
        return tuple(self.plan.stored_name(n) for n in names)

    def refuse_plaintext(self, table: Table) -> None:
        """Refuse an existing table (as it is before this run evolves it) that holds an
        encrypted column's stored name as a plaintext column.

        Raises:
            ConfigError: Naming the stream, table, column and what to do.
        """
        names = {f.name for f in table.schema().fields}
        empty = table.current_snapshot() is None  # created by a run that stopped early
        for column in self.plan.columns:
            key, _ = column.property()
            if key not in table.properties and column.stored_name in names and not empty:
                raise ConfigError(
                    f"stream '{self.stream}': table {'.'.join(table.name())} already holds "
                    f"column '{column.stored_name}' as plaintext, and the contract now "
                    f"encrypts property '{column.name}'; plaintext and encrypted values "
                    "must not mix in one column: give the property an encryptedName (a new "
                    "column), or load into a new table")

    def missing_properties(self, table: Table) -> dict[str, str]:
        """The table properties still to set on ``table`` for this plan (its encrypted
        columns' descriptions and metrics mode).

        Raises:
            ConfigError: A column is already encrypted in another mode or type.
        """
        existing = table.properties
        for column in self.plan.columns:
            key, value = column.property()
            had = existing.get(key)
            if had is not None and _described(had) != _described(value):
                raise ConfigError(
                    f"stream '{self.stream}': table {'.'.join(table.name())}: column "
                    f"'{column.stored_name}' is encrypted as {had}, the contract now asks "
                    f"for {value}; one column keeps one mode and type: restore the "
                    "contract's encryption or give the property a new encryptedName")
        return {k: v for k, v in self.plan.table_properties().items()
                if existing.get(k) != v}

    # -- upserts across key rotations ---------------------------------------------------
    def keys_under_every_key(self, keys: pa.Table) -> pa.Table:
        """Upsert keys (stored names, tokens under the active key) plus the same keys'
        tokens under every other key of the ring: a row written before a rotation holds
        its key under an older key, and must still be replaced."""
        keyring = self.cipher.keyring
        encrypted = [c for c in self.plan.columns if c.stored_name in keys.column_names]
        if not encrypted or len(keyring.keys) == 1:
            return keys
        parts = [keys]
        for key_id in keyring.keys:
            if key_id == keyring.active_id:
                continue
            cipher = self._per_key.get(key_id)
            if cipher is None:
                from dativo.crypto import ColumnCipher

                cipher = self._per_key[key_id] = ColumnCipher(keyring.with_active(key_id))
            rewrapped = keys
            for column in encrypted:
                index = rewrapped.schema.get_field_index(column.stored_name)
                rewrapped = rewrapped.set_column(
                    index, rewrapped.schema.field(index),
                    cipher.rewrap(rewrapped.column(index)))
            parts.append(rewrapped)
        return pa.concat_tables(parts)


def stream_encryption(stream: str, contract: Contract, schema: pa.Schema,
                      classifications: Sequence[str], keyring: Keyring | None,
                      cipher: ColumnCipher | None, *, keys: Mapping[str, Sequence[str]]
                      ) -> StreamEncryption | None:
    """The stream's encryption (``None``: its contract encrypts nothing).

    ``keys``: the stream's key columns by the setting that needs them (``load_method:
    upsert``, ``format: markdown_kv``), plaintext names.

    Raises:
        ConfigError: The contract encrypts a column but no key is configured, or asks for
            something encryption cannot give (see the module docstring).
    """
    from dativo.crypto import EncryptionPlan

    plan = EncryptionPlan.for_contract(contract, schema, classifications)
    if plan is None:
        return None
    first = plan.columns[0]
    where = f"stream '{stream}'"
    if keyring is None or cipher is None:
        raise ConfigError(
            f"{where}: contract {contract.source} encrypts property '{first.name}' "
            f"({_why(contract, first.name)}) but encryption_keys is not set; set "
            "encryption_keys and encryption_active_key (`dativo keys new` makes a key), "
            "nothing is ever stored unencrypted")
    names = {f.name for f in contract.fields}
    for column in plan.columns:  # lint checks the contract; evolve adds SCHEMA columns
        if column.stored_name != column.name and column.stored_name in names:
            raise ConfigError(
                f"{where}: property '{column.name}' is stored encrypted as "
                f"'{column.stored_name}', which is also a column of the stream (its SCHEMA "
                "has it); rename the encryptedName or the column")
    for name, transform in contract.partitioning:
        if plan.column(name) is not None:
            raise ConfigError(
                f"{where}: contract {contract.source} partitions by property '{name}' "
                f"({transform}), which is encrypted; partition values are stored as "
                "plaintext in the table's metadata, so partition by another column")
    for needed_by, names in keys.items():
        for name in names:
            column = plan.column(name)
            if column is not None and column.randomized:
                raise ConfigError(
                    f"{where}: {needed_by} keys rows on property '{name}', which the "
                    "contract encrypts randomized (equal values never match); make its "
                    "customProperties encryption deterministic, or key on another column")
    _refuse_quality_rules(where, contract, plan)
    return StreamEncryption(stream, plan, cipher)


def _refuse_quality_rules(where: str, contract: Contract, plan: EncryptionPlan) -> None:
    """Quality rules run on the stored table, after encryption: over an encrypted column
    they would measure tokens, and a rule comparing values would fail or, worse, pass on
    noise. Row rules (logicalTypeOptions, validValues) are checked on the plaintext."""
    for rule in contract.quality:
        named = [n for n in (rule.column, *rule.columns) if n is not None]
        if rule.query:
            named.extend(c.name for c in plan.columns
                         if re.search(rf"\b{re.escape(c.name)}\b", rule.query)
                         or re.search(rf"\b{re.escape(c.stored_name)}\b", rule.query))
        hit = next((n for n in named if plan.column(n) is not None), None)
        if hit is not None:
            raise ConfigError(
                f"{where}: quality rule '{rule.name}' of contract {contract.source} measures "
                f"property '{hit}', which is encrypted (the rule would read tokens, not "
                "values); check its values with logicalTypeOptions or a validValues rule "
                "on the property (run on the plaintext before encryption), or remove the rule")


def _why(contract: Contract, name: str) -> str:
    spec = next(f for f in contract.fields if f.name == name)
    if spec.encrypted_name:
        return f"encryptedName {spec.encrypted_name}"
    return f"classification {spec.classification}"


def _described(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return value


def prepare_table(writer: IcebergWriter, stream: str, sink: StreamSink) -> Table:
    """Load, create or evolve the stream's table in its stored shape, and record its
    encrypted columns in its properties before any row is written.

    Raises:
        ConfigError: The table mixes plaintext and encrypted values of a column (see
            :meth:`StreamEncryption.check_table` and :func:`refuse_mixing`).
    """
    contract = sink.table_contract
    if sink.encryption is not None:
        existing = _existing_table(writer, contract)
        if existing is not None:  # before any column is added to it
            sink.encryption.refuse_plaintext(existing)
    table = writer.ensure_table(contract, sink.table_schema)
    refuse_mixing(stream, table, sink.contract, sink.encryption)
    if sink.encryption is not None:
        missing = sink.encryption.missing_properties(table)
        if missing:
            LOGGER.info("Stream '%s': recording the encrypted columns of %s in its "
                        "properties", stream, ".".join(table.name()))
            with table.transaction() as tx:
                tx.set_properties(missing)
    return table


def _existing_table(writer: IcebergWriter, contract: Contract) -> Table | None:
    identifier = writer.table_identifier(contract)
    if not writer.catalog.table_exists(identifier):
        return None
    return writer.catalog.load_table(identifier)


def refuse_mixing(stream: str, table: Table, contract: Contract,
                  encryption: StreamEncryption | None) -> None:
    """Refuse a table whose properties say a column ``contract`` (plaintext names) does not
    encrypt is stored encrypted: plaintext would land among its tokens.

    Raises:
        ConfigError: Naming the stream, table and column.
    """
    plain = {f.name for f in contract.fields
             if encryption is None or encryption.plan.column(f.name) is None}
    for key in table.properties:
        stored = key[len(PROPERTY_PREFIX):] if key.startswith(PROPERTY_PREFIX) else None
        if stored is not None and stored in plain:
            raise ConfigError(
                f"stream '{stream}': table {'.'.join(table.name())} stores column "
                f"'{stored}' encrypted, but the contract no longer encrypts it; plaintext "
                "and encrypted values must not mix in one column: restore the property's "
                "classification or encryptedName (and set encryption_keys)")
