"""tap-dativo-snowflake's type mapping, for what the tests' fakesnow server cannot hold
(GEOGRAPHY, GEOMETRY, VECTOR) and the rules both read paths share."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from tap_dativo_snowflake.types import (
    Column,
    arrow_type,
    converter_for,
    jsonschema,
    property_name,
    select_expression,
)


def column(data_type: str, precision: int | None = None, scale: int | None = None,
           source: str = "C") -> Column:
    return Column(source=source, data_type=data_type, precision=precision, scale=scale,
                  nullable=True)


@pytest.mark.parametrize(("data_type", "want"), [
    ("GEOGRAPHY", {"type": ["string"], "contentMediaType": "application/geo+json",
                   "x-sql-datatype": "geography"}),
    ("GEOMETRY", {"type": ["string"], "contentMediaType": "application/geo+json",
                  "x-sql-datatype": "geometry"}),
    ("VECTOR", {"type": ["string"]}),
    ("OBJECT", {"anyOf": [{"type": t} for t in
                          ("object", "array", "string", "number", "boolean")]}),
    ("TIMESTAMP_LTZ", {"type": ["string"], "format": "date-time",
                       "x-sql-datatype": "timestamp with time zone"}),
])
def test_types_the_test_server_lacks(data_type: str, want: dict) -> None:
    assert jsonschema(column(data_type), use_singer_decimal=True) == want


def test_numbers() -> None:
    assert jsonschema(column("NUMBER", 38, 0), use_singer_decimal=True) == \
        {"type": ["integer"]}
    assert jsonschema(column("NUMBER", 10, 2), use_singer_decimal=True) == {
        "type": ["string"], "format": "x-singer.decimal", "x-sql-datatype": "decimal(10,2)"}
    assert jsonschema(column("NUMBER", 10, 2), use_singer_decimal=False) == {
        "type": ["number"], "x-sql-datatype": "decimal(10,2)"}
    assert arrow_type(jsonschema(column("NUMBER", 10, 2), use_singer_decimal=False)) == \
        pa.decimal128(10, 2)


def test_select_list_reads_binary_as_base64_and_unknown_types_as_text() -> None:
    assert select_expression(column("BINARY", source="B")) == 'BASE64_ENCODE("B") AS "B"'
    assert select_expression(column("VECTOR", source="v1")) == 'TO_VARCHAR("v1") AS "v1"'
    assert select_expression(column("GEOGRAPHY", source="G")) == '"G"'
    assert select_expression(column("TEXT", source='a"b')) == '"a""b"'


def test_names_in_lower_case_unless_quoted_mixed_case() -> None:
    assert [property_name(n) for n in ("ORDER_ID", "Amount", "with space", "X$1")] == [
        "order_id", "Amount", "with space", "x$1"]


def test_converters() -> None:
    ltz = converter_for(jsonschema(column("TIMESTAMP_TZ"), use_singer_decimal=True))
    assert ltz is not None
    paris = dt.timezone(dt.timedelta(hours=2))
    assert ltz(dt.datetime(2024, 6, 1, 2, 0, tzinfo=paris)) == "2024-06-01T00:00:00+00:00"
    decimal = converter_for(jsonschema(column("NUMBER", 10, 2), use_singer_decimal=True))
    assert decimal is not None and decimal(Decimal("0.00")) == "0.00"
    variant = converter_for(jsonschema(column("VARIANT"), use_singer_decimal=True))
    assert variant is not None and variant('{"a": [1, null]}') == {"a": [1, None]}
    assert converter_for(jsonschema(column("GEOGRAPHY"), use_singer_decimal=True)) is None


def test_an_integer_beyond_64_bits_is_refused() -> None:
    """INT is NUMBER(38,0); fakesnow's server cannot hold such a value, so this rule is
    tested here (the fast path's Arrow cast refuses it alike)."""
    integer = converter_for(jsonschema(column("NUMBER", 38, 0), use_singer_decimal=True))
    assert integer is not None and integer(2**63 - 1) == 2**63 - 1
    with pytest.raises(ValueError, match="does not fit a 64-bit integer"):
        integer(2**63)
    with pytest.raises(pa.ArrowInvalid):
        pa.array([Decimal(2**63)], pa.decimal128(38, 0)).cast(pa.int64())


def test_a_pem_key_on_one_line_with_escapes_is_read() -> None:
    """As an environment variable often carries it (TAP_DATIVO_SNOWFLAKE_PRIVATE_KEY)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tap_dativo_snowflake.client import private_key

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    one_line = private_key({"private_key": pem.replace("\n", "\\n")})
    assert one_line.private_numbers() == private_key({"private_key": pem}).private_numbers()
