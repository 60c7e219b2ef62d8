"""Reading encrypted columns back as plaintext: ``dativo decrypt`` and
:func:`decrypt_column`, for an authorised reader holding the keys.

A table says which of its columns are encrypted, under which stored name and with which
plaintext type (its ``dativo.encryption.*`` properties,
:meth:`~dativo.crypto.columns.EncryptionPlan.from_table_properties`), so no contract is
needed to read it; the keys come from the target's config (``encryption_keys``), or a
:class:`~dativo.crypto.keyring.Keyring` the caller built.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dativo.crypto.cipher import ColumnCipher
from dativo.crypto.columns import EncryptedColumn, EncryptionPlan
from dativo.crypto.keyring import Keyring
from dativo.crypto.record_tokens import RECORD_COLUMN, holds_records, map_record_tokens
from dativo.errors import ConfigError, DativoError

if TYPE_CHECKING:
    from pyiceberg.table import Table


def keyring_from_config(config: Mapping[str, Any]) -> Keyring:
    """The keyring of a target config (``encryption_keys``, ``encryption_active_key``),
    read without the target plugin.

    Raises:
        ConfigError: No key is configured, or a setting is malformed or cannot be
            resolved (naming the setting, never the key).
    """
    keyring = Keyring.from_settings(config.get("encryption_keys"),
                                    config.get("encryption_active_key"))
    if keyring is None:
        raise ConfigError("encryption_keys: not set in the config; decrypting needs the "
                          "keys the target encrypted with (key id -> env:NAME, "
                          "file:/path or vault:path#key)")
    return keyring


def table_name(table: Table) -> str:
    return ".".join(table.name())


def encrypted_column(table: Table, plan: EncryptionPlan | None, column: str
                     ) -> EncryptedColumn:
    """The encrypted column ``column`` (plaintext or stored name) of ``table``.

    Raises:
        ConfigError: The table encrypts no column, or not this one (with the ones it
            does encrypt, and a did-you-mean).
    """
    name = table_name(table)
    if plan is None:
        raise ConfigError(f"table {name} has no encrypted columns (no dativo.encryption.* "
                          "table property); read it as it is")
    found = plan.column(column)
    if found is None:
        names = sorted({n for c in plan.columns for n in (c.name, c.stored_name)})
        close = difflib.get_close_matches(column, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"table {name}: column {column!r} is not encrypted (encrypted: "
                          f"{', '.join(names)}){hint}")
    return found


def decrypt_values(cipher: ColumnCipher, column: EncryptedColumn,
                   tokens: pa.Array | pa.ChunkedArray, table: str) -> pa.Array:
    """The plaintext of one column's ``tokens``, as its plaintext type.

    Raises:
        ConfigError, CodecError: A value's key is not in the keyring, or a value does
            not decrypt; the message names the table and column.
    """
    try:
        return cipher.decrypt(tokens, column.value_type)
    except DativoError as exc:
        raise type(exc)(f"table {table}, column {column.stored_name}: {exc}") from exc


def decrypt_records(cipher: ColumnCipher, records: pa.Array | pa.ChunkedArray,
                    table: str) -> pa.Array:
    """Dead letters' ``record_json`` with each token replaced by its plaintext (as a
    JSON string: a dead letter's value may be of any type, which is why it was
    rejected)."""
    try:
        return map_record_tokens(records, cipher.decrypt)
    except DativoError as exc:
        raise type(exc)(f"table {table}, column {RECORD_COLUMN}: {exc}") from exc


def decrypt_rows(rows: pa.Table | pa.RecordBatch, plan: EncryptionPlan | None,
                 cipher: ColumnCipher | None, table: str) -> pa.Table:
    """``rows`` as stored with each encrypted column decrypted and under its plaintext
    name, in place (other columns as they are); in a dead-letter table, the tokens
    inside ``record_json``."""
    result = rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows])
    if cipher is None:
        return result
    if plan is None:
        index = result.schema.get_field_index(RECORD_COLUMN)
        if index >= 0 and holds_records(table, result.column_names):
            records = result.column(index)
            result = result.set_column(index, result.schema.field(index), decrypt_records(
                cipher, records, table).cast(records.type))
        return result
    for column in plan.columns:
        index = result.schema.get_field_index(column.stored_name)
        if index < 0:
            continue
        plain = decrypt_values(cipher, column, result.column(index), table)
        result = result.set_column(index, pa.field(column.name, column.value_type,
                                                   result.schema.field(index).nullable), plain)
    return result


def decrypted_batches(table: Table, plan: EncryptionPlan | None,
                      cipher: ColumnCipher | None, *, columns: Sequence[str] = (),
                      limit: int | None = None) -> Iterator[pa.Table]:
    """The rows of ``table`` (``columns``: stored names, all when empty), read and
    decrypted one record batch at a time."""
    scan = table.scan(selected_fields=tuple(columns) or ("*",), limit=limit)
    name = table_name(table)
    for batch in scan.to_arrow_batch_reader():
        yield decrypt_rows(batch, plan, cipher, name)


def decrypt_column(table: Table, column: str, *, keyring: Keyring | None = None,
                   config: Mapping[str, Any] | str | Path | None = None) -> pa.ChunkedArray:
    """The plaintext of one encrypted column of ``table`` (a pyiceberg table), as its
    plaintext type, in the order ``table.scan()`` reads rows.

    ``column`` is its plaintext (contract) or stored name. The keys are ``keyring``, or
    those of ``config``: the target's config, as a mapping or the path of its JSON file.

    Raises:
        ConfigError: No keys given; the column is not encrypted; a value's key is not in
            the keyring.
        CodecError: A value does not decrypt (wrong key material, or altered).
    """
    if keyring is None:
        if config is None:
            raise ConfigError("decrypt_column: pass keyring= (a dativo.crypto.Keyring) or "
                              "config= (the target config, or its JSON file's path)")
        if not isinstance(config, Mapping):
            from dativo.cli import read_target_config

            config = read_target_config(Path(config))
        keyring = keyring_from_config(config)
    encrypted = encrypted_column(table, EncryptionPlan.from_table_properties(table.properties),
                                 column)
    cipher = ColumnCipher(keyring)
    tokens = table.scan(selected_fields=(encrypted.stored_name,)).to_arrow().column(0)
    name = table_name(table)
    return pa.chunked_array([decrypt_values(cipher, encrypted, chunk, name)
                             for chunk in tokens.chunks], type=encrypted.value_type)
