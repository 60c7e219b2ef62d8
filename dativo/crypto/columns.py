"""Which columns of a table are encrypted, and how rows and tables change for it.

A contract decides: a property whose ``classification`` is one of the target's
``encryption_classifications`` (``restricted`` by default), or that has an
``encryptedName``, is stored encrypted, under that name when given. The plan is also
written into the table's properties (``dativo.encryption.<column>``), so readers,
``dativo keys rewrap`` and ``dativo forget`` know a table's encrypted columns and their
plaintext types without the contract, and so Iceberg keeps no min/max statistics of
them (sorted ciphertext bounds would be noise, plaintext bounds a leak).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

import orjson
import pyarrow as pa

from dativo.contracts import Contract, FieldSpec
from dativo.crypto.cipher import ColumnCipher, as_text
from dativo.errors import ConfigError

Mode = Literal["deterministic", "randomized"]
MODES: tuple[Mode, ...] = ("deterministic", "randomized")
PROPERTY_PREFIX = "dativo.encryption."
METRICS_PROPERTY = "write.metadata.metrics.column."
_DECIMAL = re.compile(r"decimal(?:128|256)?\((\d+), *(\d+)\)")  # fullmatch
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]")
_TIME = re.compile(r"time(32|64)\[(s|ms|us|ns)\]")


@dataclass(frozen=True)
class EncryptedColumn:
    """One encrypted column: its contract name, its stored name, mode and plaintext type."""

    name: str
    stored_name: str
    mode: Mode
    value_type: pa.DataType

    @property
    def randomized(self) -> bool:
        return self.mode == "randomized"

    def property(self) -> tuple[str, str]:
        """This column's table property (no value of the column, only its description)."""
        return (PROPERTY_PREFIX + self.stored_name,
                json.dumps({"column": self.name, "mode": self.mode,
                            "type": str(self.value_type)}, sort_keys=True))


@dataclass(frozen=True)
class EncryptionPlan:
    """A stream's (or table's) encrypted columns."""

    columns: tuple[EncryptedColumn, ...]

    @classmethod
    def for_contract(cls, contract: Contract, schema: pa.Schema,
                     classifications: Collection[str]) -> EncryptionPlan | None:
        """The plan a contract asks for (``schema``: its plaintext Arrow schema);
        ``None`` when it encrypts nothing.

        Raises:
            ConfigError: A nested property is marked, or a mode is unknown.
        """
        wanted = {c.lower() for c in classifications}
        columns = []
        for spec in contract.fields:
            if not _encrypted(spec, wanted):
                continue
            where = f"contract '{contract.name}', property '{spec.name}'"
            value_type = schema.field(spec.name).type
            if pa.types.is_nested(value_type):
                raise ConfigError(f"{where}: an {spec.kind} property cannot be encrypted; "
                                  "mark its leaf properties instead")
            mode = spec.encryption or "deterministic"
            if mode not in MODES:
                raise ConfigError(f"{where}: customProperties encryption is '{mode}'; "
                                  "use deterministic or randomized")
            columns.append(EncryptedColumn(spec.name, spec.encrypted_name or spec.name,
                                           mode, value_type))  # type: ignore[arg-type]
        return cls(tuple(columns)) if columns else None

    @classmethod
    def from_table_properties(cls, properties: Mapping[str, str]) -> EncryptionPlan | None:
        """The plan a table was written with (what its properties say); ``None`` when
        none of its columns is encrypted."""
        columns = []
        for key, value in sorted(properties.items()):
            if not key.startswith(PROPERTY_PREFIX):
                continue
            stored = key[len(PROPERTY_PREFIX):]
            try:
                described = json.loads(value)
                column = EncryptedColumn(described["column"], stored, described["mode"],
                                         arrow_type(described["type"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"table property {key} is malformed ({exc}); it is written "
                                  "by target-dativo-iceberg, restore it from the contract") from exc
            columns.append(column)
        return cls(tuple(columns)) if columns else None

    # -- names and schemas ---------------------------------------------------------
    def column(self, name: str) -> EncryptedColumn | None:
        """The encrypted column called ``name`` in the contract or in the table."""
        for column in self.columns:
            if name in (column.name, column.stored_name):
                return column
        return None

    def stored_name(self, name: str) -> str:
        column = self.column(name)
        return column.stored_name if column is not None else name

    def stored_schema(self, schema: pa.Schema) -> pa.Schema:
        """``schema`` as stored: encrypted fields renamed and typed string."""
        by_name = {c.name: c for c in self.columns}
        return pa.schema([
            pa.field(by_name[f.name].stored_name, pa.string(), f.nullable, f.metadata)
            if f.name in by_name else f for f in schema], metadata=schema.metadata)

    def table_properties(self) -> dict[str, str]:
        """The table properties that record the plan and drop the columns' statistics."""
        properties = dict(column.property() for column in self.columns)
        properties.update({METRICS_PROPERTY + column.stored_name: "none"
                           for column in self.columns})
        return properties

    # -- data ------------------------------------------------------------------------
    def encrypt_table(self, table: pa.Table, cipher: ColumnCipher) -> pa.Table:
        """``table`` (plaintext columns) with each encrypted column replaced by its tokens,
        under its stored name, in place."""
        for column in self.columns:
            if column.name not in table.column_names:
                continue
            index = table.schema.get_field_index(column.name)
            nullable = table.schema.field(index).nullable
            tokens = cipher.encrypt(table.column(index), randomized=column.randomized)
            table = table.set_column(index, pa.field(column.stored_name, pa.string(),
                                                     nullable), tokens)
        return table

    def encrypt_record_json(self, record_json: str, cipher: ColumnCipher) -> str:
        """A raw record (a dead letter) with its encrypted fields' values as tokens.
        Keys keep their names: the record stays as the tap sent it, minus plaintext.
        A value of the wrong type (why it was rejected, perhaps) is encrypted as its
        JSON text; a record that is not a JSON object is kept as its size only."""
        try:
            record = orjson.loads(record_json)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            return orjson.dumps({"_dativo_unreadable_record_bytes": len(record_json)}).decode()
        for column in self.columns:
            value = record.get(column.name)
            if value is None:
                continue
            text = value if isinstance(value, str) else _json_text(value)
            record[column.name] = cipher.encrypt_text(text, randomized=column.randomized)
        return orjson.dumps(record).decode()


def _encrypted(spec: FieldSpec, classifications: set[str]) -> bool:
    return bool(spec.encrypted_name) or (
        spec.classification is not None and spec.classification.lower() in classifications)


def _json_text(value: object) -> str:
    if isinstance(value, (int, float, bool)):
        return as_text(pa.array([value]))[0].as_py()
    return orjson.dumps(value).decode()


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type ``str(type)`` printed (the primitive types a contract maps to)."""
    simple = {str(t): t for t in (
        pa.string(), pa.large_string(), pa.bool_(), pa.int8(), pa.int16(), pa.int32(),
        pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(), pa.float16(),
        pa.float32(), pa.float64(), pa.date32(), pa.date64(), pa.binary(), pa.large_binary())}
    if name in simple:
        return simple[name]
    if match := _DECIMAL.fullmatch(name):
        precision, scale = int(match[1]), int(match[2])
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(
            precision, scale)
    if match := _TIMESTAMP.fullmatch(name):
        return pa.timestamp(match[1], tz=match[2])
    if match := _TIME.fullmatch(name):
        return pa.time32(match[2]) if match[1] == "32" else pa.time64(match[2])
    raise ValueError(f"unsupported encrypted column type {name!r}")
