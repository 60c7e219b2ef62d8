"""Encryption markings of an ODCS contract: what they load as, and what lint refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dativo.contracts import lint_document, load_contract


def contract_doc(*properties: dict) -> dict:
    return {
        "apiVersion": "v3.0.2", "kind": "DataContract", "id": "c1", "version": "1.0.0",
        "status": "active", "domain": "crm",
        "schema": [{"name": "people", "properties": list(properties)}],
    }


def randomized(**prop: object) -> dict:
    return {**prop, "customProperties": [{"property": "encryption", "value": "randomized"}]}


def test_classification_encrypted_name_and_mode_reach_the_field(tmp_path: Path) -> None:
    path = tmp_path / "people.odcs.yaml"
    path.write_text(yaml.safe_dump(contract_doc(
        {"name": "id", "logicalType": "integer", "primaryKey": True, "required": True},
        {"name": "email", "logicalType": "string", "classification": "restricted",
         "examples": ["someone@example.com"]},
        {"name": "phone", "logicalType": "string", "encryptedName": "phone_enc"},
        randomized(name="note", logicalType="string", classification="Confidential"),
    )))
    fields = {f.name: f for f in load_contract(path, "people").fields}
    assert (fields["email"].classification, fields["email"].encrypted_name,
            fields["email"].encryption) == ("restricted", None, None)
    assert fields["phone"].encrypted_name == "phone_enc"
    assert (fields["note"].classification, fields["note"].encryption) == (
        "Confidential", "randomized")
    assert fields["id"].classification is None and fields["id"].encryption is None


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ({"name": "email", "logicalType": "string", "classification": "restricted",
          "customProperties": [{"property": "encryption", "value": "randomised"}]},
         "schema[0].properties[0] (email): customProperties encryption 'randomised' is not "
         "one of deterministic, randomized; did you mean 'randomized'?"),
        (randomized(name="email", logicalType="string"),
         "schema[0].properties[0] (email): customProperties encryption has no effect "
         "without encryptedName or a classification"),
        ({"name": "address", "logicalType": "object", "encryptedName": "address_enc",
          "properties": [{"name": "city", "logicalType": "string"}]},
         "schema[0].properties[0] (address): an object column cannot be encrypted"),
        (randomized(name="tags", logicalType="array", classification="restricted",
                    items={"logicalType": "string"}),
         "schema[0].properties[0] (tags): an array column cannot be encrypted"),
        ({"name": "address", "logicalType": "object", "properties": [
            {"name": "city", "logicalType": "string", "encryptedName": "city_enc"}]},
         "schema[0].properties[0].properties[0] (city): only top-level columns can be "
         "encrypted"),
    ],
)
def test_lint_refuses_encryption_it_would_not_apply(prop: dict, expected: str) -> None:
    problems = lint_document(contract_doc(prop))
    assert any(p.startswith(expected) for p in problems), problems


def test_lint_refuses_an_encrypted_name_that_collides() -> None:
    problems = lint_document(contract_doc(
        {"name": "email", "logicalType": "string", "encryptedName": "phone"},
        {"name": "phone", "logicalType": "string", "encryptedName": "secret"},
        {"name": "fax", "logicalType": "string", "encryptedName": "secret"},
    ))
    assert problems == [
        "schema[0].properties[0] (email): encryptedName 'phone' is the name of another "
        "column; pick a name no column has",
        "schema[0].properties[2] (fax): encryptedName 'secret' is given to two columns; "
        "pick distinct names",
    ]


def test_a_free_form_json_column_and_plain_markings_lint_clean() -> None:
    assert lint_document(contract_doc(
        {"name": "id", "logicalType": "integer", "primaryKey": True, "required": True,
         "encryptedName": "id_enc"},
        {"name": "blob", "logicalType": "object", "classification": "restricted"},
        randomized(name="note", logicalType="string", encryptedName="note"),
        {"name": "public", "logicalType": "string", "classification": "public"},
    )) == []
