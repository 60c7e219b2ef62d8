"""Catalog entries of LOG_BASED streams, shared by the SQL taps (tap-dativo-postgres,
tap-dativo-mysql).

singer-sdk reads a stream's replication method from its catalog entry, so a tap picks
the stream class per entry (:func:`entry_method`) after :func:`prepare_entry` has put
the method where singer-sdk reads it and added the tap's CDC columns (each tap names
its own: ``_sdc_lsn`` for PostgreSQL, ``_sdc_binlog_pos`` for MySQL, and
``_sdc_deleted_at`` for both). :class:`PreparedCatalogTap` runs the ``--catalog`` through
the same function, so SCHEMA messages and stream maps see the CDC columns too.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

from singer_sdk.singerlib import Catalog

LOG_BASED = "LOG_BASED"
CDCColumns = Mapping[str, Mapping[str, Any]]


def entry_method(entry: Mapping[str, Any]) -> str | None:
    """The replication method a catalog entry asks for, if any."""
    if entry.get("replication_method"):
        return str(entry["replication_method"])
    for item in entry.get("metadata", []):
        if not item.get("breadcrumb"):
            meta = item.get("metadata", {})
            method = meta.get("replication-method") or meta.get("forced-replication-method")
            return str(method) if method else None
    return None


def with_cdc_columns(entry: dict, columns: CDCColumns) -> dict:
    """A copy of the catalog entry with ``columns`` added (automatic inclusion).

    Every other non-key column becomes nullable too: a delete may carry only the key
    columns (PostgreSQL without ``REPLICA IDENTITY FULL``).
    """
    entry = copy.deepcopy(entry)
    schema = entry.setdefault("schema", {"type": "object", "properties": {}})
    props = schema.setdefault("properties", {})
    keys = set(entry.get("key_properties") or [])
    for name, prop in props.items():
        types = prop.get("type")
        if name not in keys and isinstance(types, list) and "null" not in types:
            prop["type"] = [*types, "null"]
    for name, prop in columns.items():
        props.setdefault(name, dict(prop))
    metadata = entry.setdefault("metadata", [])
    known = {tuple(item.get("breadcrumb", ())) for item in metadata}
    for name in columns:
        if ("properties", name) not in known:
            metadata.append({"breadcrumb": ["properties", name],
                             "metadata": {"inclusion": "automatic"}})
    return entry


def prepare_entry(entry: dict, columns: CDCColumns) -> dict:
    """A catalog entry with its replication method where singer-sdk reads it, and, when
    LOG_BASED, the CDC ``columns``.

    The method may be the entry's ``replication_method`` (Meltano writes it there as
    well as into the metadata) or stream metadata ``forced-replication-method``; a raw
    dict may also carry metadata ``replication-method``, which singer-sdk's catalog
    parser drops, so it is copied onto the entry here.
    """
    method = entry_method(entry)
    if method and not entry.get("replication_method"):
        entry = {**entry, "replication_method": method}
    if method == LOG_BASED:
        entry = with_cdc_columns(entry, columns)
    return entry


class PreparedCatalogTap:
    """A tap mixin (before singer-sdk's ``Tap`` in the bases): the ``--catalog`` with
    every entry through :func:`prepare_entry` with the tap's :attr:`cdc_columns`."""

    cdc_columns: ClassVar[CDCColumns]
    _input_catalog: Catalog | None
    _catalog_prepared = False

    @property
    def input_catalog(self) -> Catalog | None:
        catalog = self._input_catalog
        if catalog is not None and not self._catalog_prepared:
            raw = catalog.to_dict()
            raw["streams"] = [prepare_entry(entry, self.cdc_columns)
                              for entry in raw.get("streams", [])]
            self._input_catalog = catalog = Catalog.from_dict(raw)
            self._catalog_prepared = True
        return catalog
