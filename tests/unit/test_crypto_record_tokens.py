"""Tokens inside dead letters' ``record_json``: found by their form, replaced in place,
every other record kept byte for byte."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from dativo.crypto import ColumnCipher, EncryptedColumn, EncryptionPlan, Keyring
from dativo.crypto.reading import decrypt_records
from dativo.crypto.record_tokens import holds_records, map_record_tokens, record_tokens
from dativo.errors import ConfigError

K1 = Keyring("k1", {"k1": b"\x01" * 32})
K2 = Keyring("k2", {"k1": b"\x01" * 32, "k2": b"\x02" * 32})
PLAN = EncryptionPlan((EncryptedColumn("email", "email", "deterministic", pa.string()),
                       EncryptedColumn("age", "age", "randomized", pa.int64())))


def dead_letters() -> list[str | None]:
    """As the target writes them: encrypted fields as tokens (whatever their type)."""
    cipher = ColumnCipher(K1)
    return [PLAN.encrypt_record_json('{"id": 1, "email": "ann@example.com", "age": "x"}',
                                     cipher),
            '{"id": 2,   "note": "no token here"}',
            None,
            '{"_dativo_record_reference": "s3://bucket/key"',  # not JSON: kept
            PLAN.encrypt_record_json('{"id": 3, "email": "bob@example.com", "age": 41}',
                                     cipher)]


def test_tokens_are_found_by_their_form() -> None:
    tokens = record_tokens(pa.array(dead_letters()))
    assert len(tokens) == 4
    assert ColumnCipher.key_ids(tokens) == {"k1"}


def test_decrypting_replaces_tokens_and_keeps_other_records_exactly() -> None:
    records = dead_letters()
    plain = decrypt_records(ColumnCipher(K1), pa.array(records), "acme.crm.people__dead_letter"
                            ).to_pylist()
    assert orjson.loads(plain[0]) == {"id": 1, "email": "ann@example.com", "age": "x"}
    assert orjson.loads(plain[4]) == {"id": 3, "email": "bob@example.com", "age": "41"}
    assert plain[1:4] == records[1:4]


def test_rewrapping_moves_every_token_to_the_active_key() -> None:
    cipher = ColumnCipher(K2)
    moved = map_record_tokens(pa.array(dead_letters()), cipher.rewrap)
    assert ColumnCipher.key_ids(record_tokens(moved)) == {"k2"}
    assert orjson.loads(moved.to_pylist()[0])["email"] == cipher.tokens_for(
        "ann@example.com")[1]
    plain = decrypt_records(ColumnCipher(K2.without("k1")), moved, "t__dead_letter")
    assert orjson.loads(plain.to_pylist()[4])["email"] == "bob@example.com"


def test_a_missing_key_names_the_table_and_column() -> None:
    with pytest.raises(ConfigError, match=r"^table acme.crm.people__dead_letter, column "
                                          r"record_json: a value is encrypted under key 'k1'"):
        decrypt_records(ColumnCipher(Keyring("k2", {"k2": b"\x02" * 32})),
                        pa.array(dead_letters()), "acme.crm.people__dead_letter")


def test_only_dead_letter_tables_hold_records() -> None:
    assert holds_records("acme.crm.people__dead_letter", ["run_id", "record_json"])
    assert not holds_records("acme.crm.people", ["record_json"])
    assert not holds_records("acme.crm.people__dead_letter", ["run_id"])
