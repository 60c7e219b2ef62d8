"""dativo.crypto: AES-SIV tokens, keyrings, and what a contract's plan does to rows."""

from __future__ import annotations

import datetime as dt
import decimal
import os

import orjson
import pyarrow as pa
import pytest

from dativo.contracts import Contract, FieldSpec, arrow_schema
from dativo.crypto import ColumnCipher, EncryptionPlan, Keyring
from dativo.crypto.columns import arrow_type
from dativo.errors import CodecError, ConfigError

K1, K2 = os.urandom(32), os.urandom(32)
EMAILS = pa.array(["ada@example.com", None, "bob@example.com", "ada@example.com"])


def cipher(active: str = "k1", **keys: bytes) -> ColumnCipher:
    return ColumnCipher(Keyring(active, keys or {"k1": K1, "k2": K2}))


def test_deterministic_tokens_repeat_and_round_trip() -> None:
    tokens = cipher().encrypt(EMAILS)
    assert tokens[0] == tokens[3] and tokens[0] != tokens[2]
    assert tokens[1].as_py() is None
    assert all(t.startswith("dv1.k1.d.") for t in tokens.drop_null().to_pylist())
    assert b"ada@example.com" not in "".join(tokens.drop_null().to_pylist()).encode()
    assert cipher().decrypt(tokens).equals(EMAILS)


def test_randomized_tokens_differ_and_round_trip() -> None:
    tokens = cipher().encrypt(EMAILS, randomized=True)
    assert tokens[0] != tokens[3] and tokens[0].as_py().startswith("dv1.k1.r.")
    assert cipher().decrypt(tokens).equals(EMAILS)


def test_many_repeated_values_take_the_per_distinct_path() -> None:
    values = pa.array([f"c{i % 7}" for i in range(10_000)])
    tokens = cipher().encrypt(values)
    assert len(set(tokens.to_pylist())) == 7
    assert cipher().decrypt(tokens).equals(values)


@pytest.mark.parametrize("values", [
    pa.array([1, None, -3]),
    pa.array([1.25, 2.0]),
    pa.array([True, False]),
    pa.array([dt.date(2024, 2, 29)]),
    pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)],
             pa.timestamp("us", tz="UTC")),
    pa.array([decimal.Decimal("10.50")], pa.decimal128(12, 2)),
], ids=str)
def test_typed_values_decrypt_to_their_type(values: pa.Array) -> None:
    assert cipher().decrypt(cipher().encrypt(values), values.type).equals(values)
    assert arrow_type(str(values.type)) == values.type


def test_rotation_rewrap_and_retiring_a_key() -> None:
    old = cipher("k1").encrypt(EMAILS)
    rotated = cipher("k2")
    new = rotated.encrypt(EMAILS)
    assert ColumnCipher.key_ids(old) == {"k1"} and ColumnCipher.key_ids(new) == {"k2"}
    assert ColumnCipher.key_ids(pa.array(["plain text", None])) == set()
    assert rotated.decrypt(old).equals(EMAILS)  # old values need no rewrite to read
    moved = rotated.rewrap(pa.concat_arrays([old, new]))
    assert ColumnCipher.key_ids(moved) == {"k2"}
    # deterministic: a rewrapped value equals the value written under the new key
    assert moved.slice(0, 4).equals(new)
    retired = ColumnCipher(rotated.keyring.without("k1"))
    assert retired.decrypt(moved.slice(0, 4)).equals(EMAILS)
    with pytest.raises(ConfigError, match="key 'k1', which encryption_keys does not hold"):
        retired.decrypt(old)


def test_tokens_for_matches_the_value_under_every_key() -> None:
    both = cipher("k2")
    written = [cipher("k1").encrypt(EMAILS)[0].as_py(), both.encrypt(EMAILS)[0].as_py()]
    assert sorted(both.tokens_for("ada@example.com")) == sorted(written)
    assert both.tokens_for(pa.scalar(42)) == both.tokens_for("42")


def test_tampered_relabelled_and_foreign_values_are_refused() -> None:
    token = cipher().encrypt(EMAILS)[0].as_py()
    at = len("dv1.k1.d.") + 5  # a character of the ciphertext, not of the padding
    flipped = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]
    relabelled = token.replace("dv1.k1.", "dv1.k2.", 1)
    for bad in (flipped, relabelled):
        with pytest.raises(CodecError, match="does not decrypt"):
            cipher().decrypt(pa.array([bad]))
    with pytest.raises(CodecError, match="not a dativo encrypted value"):
        cipher().decrypt(pa.array(["ada@example.com"]))
    wrong_key = ColumnCipher(Keyring("k1", {"k1": K2}))
    with pytest.raises(CodecError, match="not the one that encrypted it"):
        wrong_key.decrypt(pa.array([token]))


def test_keyring_checks_ids_sizes_and_the_active_key() -> None:
    with pytest.raises(ConfigError, match=r"key id 'a\.b'"):
        Keyring("a.b", {"a.b": K1})
    with pytest.raises(ConfigError, match="32 bytes, this one is 16"):
        Keyring("k1", {"k1": K1[:16]})
    with pytest.raises(ConfigError, match="'k3' is not a key of encryption_keys"):
        Keyring("k3", {"k1": K1})
    assert Keyring.from_settings(None, None) is None
    with pytest.raises(ConfigError, match="encryption_keys is empty"):
        Keyring.from_settings({}, "k1")
    assert "K1" not in repr(Keyring("k1", {"k1": K1})) and repr(K1) not in repr(
        Keyring("k1", {"k1": K1}))


CONTRACT = Contract("customers", (
    FieldSpec("id", "integer", required=True, primary_key_position=1),
    FieldSpec("email", "string", required=True, classification="Restricted"),
    FieldSpec("ssn", "string", encrypted_name="ssn_enc", encryption="randomized"),
    FieldSpec("birthday", "date", classification="confidential"),
    FieldSpec("tags", "array", classification="restricted",
              item=FieldSpec("item", "string")),
))


def plan_for(contract: Contract = CONTRACT, classes: tuple[str, ...] = ("restricted",)
             ) -> EncryptionPlan | None:
    return EncryptionPlan.for_contract(contract, arrow_schema(contract), classes)


def test_a_contract_decides_which_columns_are_encrypted() -> None:
    with pytest.raises(ConfigError, match="property 'tags': an array property cannot"):
        plan_for()
    contract = Contract(CONTRACT.name, CONTRACT.fields[:4])
    plan = plan_for(contract)
    assert plan is not None
    assert [(c.name, c.stored_name, c.mode) for c in plan.columns] == [
        ("email", "email", "deterministic"), ("ssn", "ssn_enc", "randomized")]
    wider = plan_for(contract, ("restricted", "confidential"))
    assert wider is not None and wider.column("birthday") is not None
    assert plan_for(Contract("c", CONTRACT.fields[:1])) is None
    stored = plan.stored_schema(arrow_schema(contract))
    assert stored.names == ["id", "email", "ssn_enc", "birthday"]
    assert stored.field("ssn_enc").type == pa.string()
    assert not stored.field("email").nullable


def test_table_properties_record_the_plan_and_drop_statistics() -> None:
    contract = Contract(CONTRACT.name, CONTRACT.fields[:4])
    plan = plan_for(contract, ("restricted", "confidential"))
    assert plan is not None
    properties = plan.table_properties()
    assert properties["write.metadata.metrics.column.ssn_enc"] == "none"
    read = EncryptionPlan.from_table_properties({**properties, "other": "x"})
    assert read is not None and set(read.columns) == set(plan.columns)
    assert EncryptionPlan.from_table_properties({"other": "x"}) is None
    with pytest.raises(ConfigError, match=r"dativo\.encryption\.email is malformed"):
        EncryptionPlan.from_table_properties({"dativo.encryption.email": "{"})


def test_rows_and_dead_letters_carry_tokens_only() -> None:
    contract = Contract(CONTRACT.name, CONTRACT.fields[:4])
    plan = plan_for(contract)
    assert plan is not None
    rows = pa.table({"id": [1, 2], "email": ["ada@example.com", "bob@example.com"],
                     "ssn": ["123-45-6789", None], "birthday": [dt.date(1990, 1, 1), None]})
    stored = plan.encrypt_table(rows, cipher())
    assert stored.column_names == ["id", "email", "ssn_enc", "birthday"]
    assert cipher().decrypt(stored["email"]).equals(rows["email"].combine_chunks())
    assert cipher().decrypt(stored["ssn_enc"]).equals(rows["ssn"].combine_chunks())
    dead = plan.encrypt_record_json(
        '{"id": "x", "email": "ada@example.com", "ssn": 123456789}', cipher())
    assert b"ada@example.com" not in dead.encode() and b"123456789" not in dead.encode()
    parsed = orjson.loads(dead)
    assert parsed["id"] == "x"
    assert cipher().decrypt(pa.array([parsed["ssn"]])).to_pylist() == ["123456789"]
    assert orjson.loads(plan.encrypt_record_json("not json ada@example.com", cipher())) == {
        "_dativo_unreadable_record_bytes": 24}
