"""tap-dativo-salesforce's field types: JSON Schema per describe type, and wire values
(REST JSON or Bulk CSV text) made record values the same way."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dativo.errors import CodecError
from tap_dativo_salesforce.auth import jwt_audience
from tap_dativo_salesforce.types import (
    RecordShaper,
    component_key,
    converter,
    decimal_type,
    property_schema,
)


@pytest.mark.parametrize(("compound", "component", "key"), [
    ("BillingAddress", "BillingPostalCode", "postalCode"),
    ("BillingAddress", "BillingGeocodeAccuracy", "geocodeAccuracy"),
    ("MailingAddress", "MailingStreet", "street"),
    ("Address", "City", "city"),  # Lead's and User's compound has no prefix
    ("HQ__c", "HQ__Latitude__s", "latitude"),
    ("Where__c", "Where__Longitude__s", "longitude"),
])
def test_component_keys_are_the_rest_api_names(compound: str, component: str,
                                               key: str) -> None:
    assert component_key(compound, component) == key


def test_decimal_types_take_the_fields_precision_and_scale() -> None:
    assert decimal_type({"precision": 18, "scale": 2}) == "decimal(18,2)"
    assert decimal_type({"precision": 0, "scale": 0}) == "decimal(18,0)"  # unset
    assert decimal_type({"precision": 3, "scale": 5}) == "decimal(5,5)"  # never p < s
    assert property_schema({"type": "percent", "precision": 5, "scale": 2}) == {
        "type": ["number", "null"], "x-sql-datatype": "decimal(5,2)"}


@pytest.mark.parametrize(("wire", "expected"), [
    ("2024-01-15T10:00:01.250Z", "2024-01-15T10:00:01.250+00:00"),  # Bulk CSV
    ("2024-01-15T10:00:01.250+0000", "2024-01-15T10:00:01.250+00:00"),  # REST JSON
    ("2024-01-15T12:00:01.250+0200", "2024-01-15T10:00:01.250+00:00"),
    ("2024-01-15T10:00:01Z", "2024-01-15T10:00:01.000+00:00"),
    ("", None),
])
def test_datetimes_become_utc_iso_8601(wire: str, expected: str | None) -> None:
    assert converter({"name": "SystemModstamp", "type": "datetime"}, csv=True)(wire) == expected


def test_a_bad_value_names_its_field() -> None:
    with pytest.raises(CodecError, match="field AnnualRevenue: 'n/a' is not a number"):
        converter({"name": "AnnualRevenue", "type": "currency"}, csv=True)("n/a")
    with pytest.raises(CodecError, match="field SystemModstamp: 'yesterday' is not a"):
        converter({"name": "SystemModstamp", "type": "datetime"}, csv=True)("yesterday")


FIELDS = [{"name": "Id", "type": "id"}, {"name": "Name", "type": "string"},
          {"name": "Amount", "type": "currency", "precision": 18, "scale": 2},
          {"name": "Seats", "type": "int"}, {"name": "On", "type": "boolean"},
          {"name": "Tags", "type": "multipicklist"}, {"name": "Due", "type": "date"},
          {"name": "AtTime", "type": "time"}, {"name": "Blob", "type": "base64"},
          {"name": "ShipCity", "type": "string", "compoundFieldName": "ShipAddress"},
          {"name": "ShipStreet", "type": "textarea", "compoundFieldName": "ShipAddress"},
          {"name": "ShipAddress", "type": "address"}]


def test_a_csv_row_and_a_json_record_make_the_same_record() -> None:
    csv_row = {"Id": "001A", "Name": "", "Amount": "12.50", "Seats": "3", "On": "true",
               "Tags": "a;b", "Due": "2024-02-29", "AtTime": "10:30:00.000Z",
               "ShipCity": "Oslo", "ShipStreet": ""}
    json_row = {"attributes": {"type": "X"}, "Id": "001A", "Name": None,
                "Amount": Decimal("12.50"), "Seats": 3, "On": True, "Tags": "a;b",
                "Due": "2024-02-29", "AtTime": "10:30:00.000Z", "ShipCity": "Oslo",
                "ShipStreet": None, "ShipAddress": {"city": "Oslo", "street": None}}
    expected = {"Id": "001A", "Name": None, "Amount": Decimal("12.50"), "Seats": 3,
                "On": True, "Tags": ["a", "b"], "Due": "2024-02-29", "AtTime": "10:30:00.000",
                "ShipCity": "Oslo", "ShipStreet": None,
                "ShipAddress": {"city": "Oslo", "street": None}}
    assert RecordShaper(FIELDS, csv=True)(csv_row) == expected
    assert RecordShaper(FIELDS, csv=False)(json_row) == expected
    empty = RecordShaper(FIELDS, csv=True)({"Id": "001B"})
    assert empty["ShipAddress"] is None and "Blob" not in empty


@pytest.mark.parametrize(("login_url", "audience"), [
    ("https://login.salesforce.com", "https://login.salesforce.com"),
    ("https://test.salesforce.com", "https://test.salesforce.com"),
    ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
    ("https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
])
def test_the_jwt_audience_is_the_generic_login_host_for_my_domains(login_url: str,
                                                                     audience: str) -> None:
    assert jwt_audience(login_url) == audience
