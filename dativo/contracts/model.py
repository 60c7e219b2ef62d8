"""Typed, engine-neutral view of a data contract.

Both ODCS contracts and Singer SCHEMA messages are reduced to these values, so the
rest of the system (Arrow mapping, validation, Iceberg) has one input shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from dativo.quality.rules import QualityRule

FieldKind = Literal[
    "string",
    "integer",
    "number",
    "decimal",
    "boolean",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "object",
    "array",
    "json",
]
"""Closed vocabulary of column kinds. ``json`` is free-form JSON stored as text."""

StringFormat = Literal["email", "uuid", "date", "date-time", "uri"]

MAX_NESTING_DEPTH = 32
"""Deepest column a contract or SCHEMA may declare: a top-level column is at depth 1,
each object member or array element one deeper. pyiceberg cannot read back the table
metadata of a column nested about 65 deep (and fails writing it a little earlier), and
such a table then fails every later run, so deeper shapes are refused before any table
is touched; the deep part can be declared as an object without properties (JSON text)."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One column (or nested member) and the rules its values must satisfy."""

    name: str
    kind: FieldKind
    required: bool = False
    primary_key_position: int | None = None
    precision: int | None = None
    scale: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    minimum: float | str | None = None
    maximum: float | str | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    format: str | None = None
    valid_values: tuple[object, ...] | None = None
    children: tuple[FieldSpec, ...] = ()
    item: FieldSpec | None = None
    description: str | None = None
    classification: str | None = None
    """ODCS ``classification`` (e.g. ``restricted``): the target encrypts the column when
    it is one of its ``encryption_classifications``."""
    encrypted_name: str | None = None
    """ODCS ``encryptedName``: the column is stored encrypted, under this name."""
    encryption: str | None = None
    """``deterministic`` (``None`` means the same) or ``randomized``, from the property's
    ``customProperties: [{property: encryption, value: ...}]``."""


@dataclass(frozen=True, slots=True)
class Contract:
    """A stream's contract: where it lands and what every record must satisfy.

    ``source`` is the contract file, or ``singer-schema`` when derived from a SCHEMA
    message because no ODCS contract was found.
    """

    name: str
    fields: tuple[FieldSpec, ...]
    domain: str = "default"
    tenant: str | None = None
    version: str | None = None
    source: str = "singer-schema"
    partitioning: tuple[tuple[str, str], ...] = field(default=())
    table_suffix: str = ""
    """A reserved suffix (``dativo.iceberg.naming.RESERVED_SUFFIXES``) for a table the target
    keeps beside the stream's own, e.g. Markdown-KV's; appended after naming, so a
    stream's name can never produce it."""
    quality: tuple[QualityRule, ...] = ()
    """The contract's measured quality rules (:mod:`dativo.quality.rules`), run on each
    commit of the stream's table; empty for a Singer SCHEMA and for most contracts."""
    anomaly_blocks: bool = False
    """The schema object opts in to blocking a strict commit on an anomaly flag
    (``customProperties: [{property: anomaly, value: block}]``)."""

    @property
    def primary_key(self) -> tuple[str, ...]:
        """Primary-key column names ordered by their ``primaryKeyPosition``."""
        keyed = [f for f in self.fields if f.primary_key_position is not None]
        return tuple(f.name for f in sorted(keyed, key=lambda f: f.primary_key_position or 0))

    @property
    def is_odcs(self) -> bool:
        return self.source != "singer-schema"
