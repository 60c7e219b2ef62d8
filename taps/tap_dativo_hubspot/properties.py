"""HubSpot property definitions (``/crm/v3/properties/<object>``) to JSON Schema and values.

HubSpot sends every property value as a string. Numbers stay exact decimal strings
(``x-singer.decimal``: currency amounts must not pass through a float), booleans become
booleans, datetimes RFC 3339 UTC and dates ``YYYY-MM-DD``. A value that does not convert
is a clear error naming the object, record and property, never a silent null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from dativo.errors import CodecError

Converter = Callable[[str], Any]
STRING: dict[str, Any] = {"type": ["string", "null"]}


def _datetime(value: str) -> str:
    if value.isdigit():  # some portals send epoch ms
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc).isoformat()
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when.astimezone(timezone.utc).isoformat()


def _date(value: str) -> str:
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc).date().isoformat()
    datetime.fromisoformat(value[:10])  # raises ValueError when it is no date
    return value[:10]


def _number(value: str) -> str:
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(value)
    return value


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ValueError(value)
    return lowered == "true"


KINDS: dict[str, tuple[dict[str, Any], Converter | None]] = {
    "number": ({"type": ["string", "null"], "format": "x-singer.decimal"}, _number),
    "bool": ({"type": ["boolean", "null"]}, _bool),
    "datetime": ({"type": ["string", "null"], "format": "date-time"}, _datetime),
    "date": ({"type": ["string", "null"], "format": "date"}, _date),
}


def property_schema(definition: Mapping[str, Any]) -> dict[str, Any]:
    """One property's JSON Schema; unknown kinds (string, enumeration, phone) are strings."""
    schema, _ = KINDS.get(str(definition.get("type")), (STRING, None))
    described = dict(schema)
    if definition.get("label"):
        described["description"] = str(definition["label"])
    return described


def converters(definitions: list[Mapping[str, Any]]) -> dict[str, Converter]:
    """Property name -> converter, for the properties that are not plain strings."""
    out: dict[str, Converter] = {}
    for definition in definitions:
        _, convert = KINDS.get(str(definition.get("type")), (STRING, None))
        if convert is not None:
            out[str(definition["name"])] = convert
    return out


def convert_properties(stream: str, record_id: str, values: Mapping[str, Any],
                       convert: Mapping[str, Converter]) -> dict[str, Any]:
    """Typed property values of one object; empty strings are nulls, as HubSpot means them.

    Raises:
        CodecError: A value does not match its property's type.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "":
            out[name] = None
            continue
        fn = convert.get(name)
        try:
            out[name] = fn(str(value)) if fn else value
        except (ValueError, InvalidOperation) as exc:
            raise CodecError(
                f"stream '{stream}', record id {record_id}, property '{name}': {value!r} "
                f"is not a valid {fn.__name__.lstrip('_') if fn else 'value'}; fix the "
                f"property in HubSpot or deselect it") from exc
    return out
