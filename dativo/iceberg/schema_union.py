"""A stream's schema applied to its Iceberg table, in time linear in its column count.

pyiceberg's ``UpdateSchema.union_by_name`` rebuilds the table's whole top-level struct
for every column it looks up, and then finds each column by a linear scan: O(columns²)
(a 5,000-column SCHEMA took a minute before its table was touched). Each
``update_schema()`` also deep-copies the table metadata a few times, even when nothing
changes, which is the common case: the table already has the stream's columns.

Here the same visitor runs with name lookups from per-struct dictionaries, first
against a probe that only notes whether any change would be made, so an unchanged
table costs no metadata copy and no commit; only a real change goes through
``update_schema()``. New tables are created with their identifier fields (primary
key) in the schema, instead of a second commit that sets them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema, assign_fresh_schema_ids, visit_with_partner
from pyiceberg.table.update.schema import (
    PartnerIdByNameAccessor,
    UpdateSchema,
    _UnionByNameVisitor,
)
from pyiceberg.types import NestedField, StructType


def iceberg_schema(schema: pa.Schema, identifier_fields: Sequence[str] = ()) -> Schema:
    """``schema`` as an Iceberg schema for a new table, with ``identifier_fields``.

    Raises:
        ValueError: An identifier field is missing, optional or not primitive.
    """
    converted = assign_fresh_schema_ids(Catalog._convert_schema_if_needed(schema))
    if not identifier_fields:
        return converted
    return Schema(*converted.fields, identifier_field_ids=[
        converted.find_field(name).field_id for name in identifier_fields])


def changes_table(existing: Schema, schema: pa.Schema | Schema) -> bool:
    """Whether ``union_by_name(schema)`` would change a table whose schema is ``existing``."""
    probe = _ChangeProbe()
    _union(probe, existing, schema)
    return probe.changed


def union_by_name(update: UpdateSchema, existing: Schema, schema: pa.Schema | Schema) -> None:
    """pyiceberg's ``update.union_by_name(schema)``; ``existing`` is the schema ``update``
    started from (the table's current one)."""
    _union(update, existing, schema)


def _union(update: Any, existing: Schema, schema: pa.Schema | Schema) -> None:
    index = _NameIndex(existing)
    visit_with_partner(Catalog._convert_schema_if_needed(schema), -1,
                       _IndexedUnionVisitor(update, existing, index),
                       _IndexedAccessor(existing, index))


class _NameIndex:
    """Fields of each struct of a schema by name, built once per struct looked at."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._structs: dict[int, dict[str, NestedField]] = {}

    def fields(self, struct_id: int) -> dict[str, NestedField]:
        """The fields of the struct ``struct_id`` (-1: the schema itself) by name.

        Raises:
            ValueError: ``struct_id`` is not a struct.
        """
        by_name = self._structs.get(struct_id)
        if by_name is None:
            struct = (self.schema.as_struct() if struct_id == -1
                      else self.schema.find_field(struct_id).field_type)
            if not isinstance(struct, StructType):
                raise ValueError(f"Expected StructType: {struct}")
            by_name = self._structs[struct_id] = {f.name: f for f in struct.fields}
        return by_name


class _IndexedAccessor(PartnerIdByNameAccessor):
    def __init__(self, schema: Schema, index: _NameIndex) -> None:
        super().__init__(partner_schema=schema, case_sensitive=True)
        self._index = index

    def field_partner(self, partner_field_id: int | None, field_id: int,
                      field_name: str) -> int | None:
        if partner_field_id is None:
            return None
        field = self._index.fields(partner_field_id).get(field_name)
        return field.field_id if field is not None else None


class _IndexedUnionVisitor(_UnionByNameVisitor):
    def __init__(self, update: Any, existing: Schema, index: _NameIndex) -> None:
        super().__init__(update_schema=update, existing_schema=existing, case_sensitive=True)
        self._index = index

    def struct(self, struct: StructType, partner_id: int | None,
               missing_positions: list[bool]) -> bool:
        """pyiceberg's, with the partner's fields found by name in the index."""
        if partner_id is None:
            return True
        partner_fields = self._index.fields(partner_id)
        for field, missing in zip(struct.fields, missing_positions, strict=True):
            if missing:
                self._add_column(partner_id, field)
            elif (existing := partner_fields.get(field.name)) is not None:
                self._update_column(field, existing)
        return False


class _ChangeProbe:
    """Stands in for an ``UpdateSchema``: notes that the visitor asked for a change."""

    changed = False

    def add_column(self, *_: Any, **__: Any) -> _ChangeProbe:
        self.changed = True
        return self

    def make_column_optional(self, *_: Any, **__: Any) -> _ChangeProbe:
        self.changed = True
        return self

    def update_column(self, *_: Any, **__: Any) -> _ChangeProbe:
        self.changed = True
        return self
