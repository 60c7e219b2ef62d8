"""Salesforce field types to JSON Schema, and wire values (JSON or Bulk CSV) to records.

One mapping for both read paths, from the ``fields`` of ``sobjects/<name>/describe``:

* ``id``, ``reference``, ``string``, ``textarea``, ``picklist``, ``combobox``,
  ``email``, ``phone``, ``url``, ``encryptedstring``, ``anyType`` -> string;
* ``multipicklist`` -> array of strings (Salesforce's ``a;b`` split on ``;``);
* ``boolean`` -> boolean; ``int``/``long`` -> integer;
* ``double``, ``currency``, ``percent`` -> number with ``x-sql-datatype
  decimal(precision,scale)`` from the field's own precision and scale, so the target
  makes an exact decimal column and no value goes through a float;
* ``date`` -> date, ``datetime`` -> date-time (UTC), ``time`` -> time;
* compound ``address`` and ``location`` fields -> objects whose properties are the
  compound's components. Salesforce documents the components (``BillingCity``,
  ``Location__Latitude__s``) as the real, queryable fields and the compound as a
  read-only view of them that the Bulk API cannot select; so the tap selects only the
  components, in both paths, and builds the object from them. The components stay
  columns of their own too;
* formula fields (``calculated``) have their result type as ``type`` in the describe,
  and are mapped by it like any other (read-only; a formula change does not move
  ``SystemModstamp``, see docs/tap-salesforce.md);
* ``base64`` (blob bodies, read one record at a time through their own URL, and not
  allowed in Bulk queries) is left out of the stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from dativo.errors import CodecError

Field = Mapping[str, Any]
Converter = Callable[[Any], Any]

STRING_TYPES = frozenset({"id", "reference", "string", "textarea", "picklist", "combobox",
                          "email", "phone", "url", "encryptedstring", "anyType"})
DECIMAL_TYPES = frozenset({"double", "currency", "percent"})
COMPOUND_TYPES = frozenset({"address", "location"})
SKIPPED_TYPES = frozenset({"base64"})
MAX_PRECISION = 38
DEFAULT_PRECISION = 18  # Salesforce's largest number field
_SF_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def is_compound(field: Field) -> bool:
    return field.get("type") in COMPOUND_TYPES


def selectable(field: Field) -> bool:
    """Read in SOQL: not a compound view (built from its components) nor a blob."""
    return not is_compound(field) and field.get("type") not in SKIPPED_TYPES


def component_key(compound: str, component: str) -> str:
    """The object key of a compound's component, as the REST API names it in the
    compound value: ``BillingPostalCode`` of ``BillingAddress`` -> ``postalCode``,
    ``Where__Latitude__s`` of ``Where__c`` -> ``latitude``."""
    if compound.endswith("__c") and component.endswith("__s"):
        rest = component[len(compound) - 1:-3]  # Where__Latitude__s -> Latitude
    else:
        prefix = compound.removesuffix("Address")
        rest = component[len(prefix):] if component.startswith(prefix) else component
    return rest[:1].lower() + rest[1:]


def decimal_type(field: Field) -> str:
    precision = int(field.get("precision") or 0) or DEFAULT_PRECISION
    scale = int(field.get("scale") or 0)
    precision = min(max(precision, scale), MAX_PRECISION)
    return f"decimal({precision},{scale})"


def property_schema(field: Field, components: list[Field] | None = None) -> dict[str, Any]:
    """The JSON Schema of one describe field (nullable: Salesforce returns null for
    any field the user may not see or that is empty)."""
    kind = field.get("type")
    if kind == "id":
        return {"type": ["string"]}  # the primary key: never null
    if kind in DECIMAL_TYPES:
        return {"type": ["number", "null"], "x-sql-datatype": decimal_type(field)}
    if kind in ("int", "long"):
        return {"type": ["integer", "null"]}
    if kind == "boolean":
        return {"type": ["boolean", "null"]}
    if kind == "date":
        return {"type": ["string", "null"], "format": "date"}
    if kind == "datetime":
        return {"type": ["string", "null"], "format": "date-time"}
    if kind == "time":
        return {"type": ["string", "null"], "format": "time"}
    if kind == "multipicklist":
        return {"type": ["array", "null"], "items": {"type": "string"}}
    if kind in COMPOUND_TYPES:
        compound = str(field["name"])
        return {"type": ["object", "null"], "properties": {
            component_key(compound, str(c["name"])): property_schema(c)
            for c in components or []}}
    return {"type": ["string", "null"]}


def _datetime(value: str, where: str) -> str:
    """Salesforce writes ``2024-01-02T03:04:05.000+0000`` (REST) or ``...000Z`` (Bulk
    CSV): always UTC, as ISO 8601 with ``+00:00``."""
    if len(value) in (24, 28) and value[19] == "." and value[23:] in ("Z", "+0000"):
        return value[:23] + "+00:00"  # the forms Salesforce writes: no parsing
    match = _SF_DATETIME.fullmatch(value)
    if match is None:
        raise CodecError(f"field {where}: {value!r} is not a Salesforce dateTime")
    date, time, fraction, zone = match.groups()
    parsed = datetime.fromisoformat(f"{date}T{time}{fraction or ''}")
    if zone and zone != "Z":
        zone = zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
        parsed = datetime.fromisoformat(f"{date}T{time}{fraction or ''}{zone}")
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed.isoformat(timespec="milliseconds") + "+00:00"


def converter(field: Field, *, csv: bool) -> Converter:
    """Turns one wire value of ``field`` into its record value. JSON values are typed
    already (numbers arrive as :class:`Decimal`, see the client); CSV values are text,
    and an empty cell is null (Bulk 2.0 writes no other null)."""
    kind = field.get("type")
    name = str(field.get("name"))

    def text(value: Any) -> Any:
        return None if value is None or (csv and value == "") else value

    if kind in DECIMAL_TYPES:
        def number(value: Any) -> Any:
            value = text(value)
            if value is None or isinstance(value, Decimal):
                return value
            try:
                return Decimal(value if isinstance(value, str) else str(value))
            except InvalidOperation:
                raise CodecError(f"field {name}: {value!r} is not a number") from None
        return number
    if kind in ("int", "long"):
        def integer(value: Any) -> Any:
            value = text(value)
            if value is None or isinstance(value, int):
                return value
            try:
                return int(Decimal(str(value)))
            except InvalidOperation:
                raise CodecError(f"field {name}: {value!r} is not an integer") from None
        return integer
    if kind == "boolean":
        def boolean(value: Any) -> Any:
            value = text(value)
            return value if value is None or isinstance(value, bool) else value == "true"
        return boolean
    if kind == "datetime":
        return lambda value: None if text(value) is None else _datetime(value, name)
    if kind == "time":  # 10:30:00.000Z
        return lambda value: None if text(value) is None else str(value).removesuffix("Z")
    if kind == "multipicklist":
        return lambda value: None if text(value) is None else str(value).split(";")
    return text


class RecordShaper:
    """Builds a stream's records from rows keyed by field name (a REST record or a CSV
    row): each value converted, compound objects assembled from their components."""

    def __init__(self, fields: list[Field], *, csv: bool) -> None:
        self.fields = [f for f in fields if selectable(f)]
        self._convert = {str(f["name"]): converter(f, csv=csv) for f in self.fields
                         if f.get("type") not in STRING_TYPES}
        # Text needs no conversion: kept as it is (REST), or "" made null (CSV).
        self._text = [str(f["name"]) for f in self.fields if f.get("type") in STRING_TYPES]
        self._csv = csv
        self._compounds: list[tuple[str, list[tuple[str, str]]]] = []
        for field in fields:
            if is_compound(field):
                name = str(field["name"])
                parts = [(component_key(name, str(c["name"])), str(c["name"]))
                         for c in fields if c.get("compoundFieldName") == name]
                self._compounds.append((name, parts))

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        get = row.get
        if self._csv:
            record = {name: get(name) or None for name in self._text}
        else:
            record = {name: get(name) for name in self._text}
        for name, convert in self._convert.items():
            record[name] = convert(get(name))
        for name, parts in self._compounds:
            values = {key: record.get(component) for key, component in parts}
            record[name] = values if any(v is not None for v in values.values()) else None
        return record
