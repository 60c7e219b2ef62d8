"""Drift between a tap's SCHEMA and the stream's ODCS contract is reported, both ways."""

from __future__ import annotations

import logging

import pytest

from dativo.contracts import Contract, FieldSpec
from target_dativo_iceberg.stream_contracts import schema_drift

CONTRACT = Contract(name="users", source="users.odcs.yaml",
                    fields=(FieldSpec("id", "integer", required=True),
                            FieldSpec("email", "string")))


def test_drift_lists_columns_on_each_side_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    schema = {"properties": {"id": {"type": "integer"}, "nickname": {"type": "string"}}}
    with caplog.at_level(logging.WARNING):
        drift = schema_drift("users", schema, CONTRACT, "discard_columns")
    assert drift == {"schema_only": ["nickname"], "contract_only": ["email"]}
    assert "column(s) nickname are in the SCHEMA but not in contract" in caplog.text
    assert "contract column(s) email are missing from the SCHEMA" in caplog.text


def test_no_drift_when_they_agree_or_when_the_schema_is_the_contract() -> None:
    schema = {"properties": {"id": {"type": "integer"}, "email": {"type": "string"}}}
    assert schema_drift("users", schema, CONTRACT, "discard_columns") == {}
    fallback = Contract(name="users", fields=(FieldSpec("id", "integer"),))
    assert schema_drift("users", {"properties": {"x": {}}}, fallback, "freeze") == {}
