"""Column values encrypted with AES-256-SIV, as self-describing string tokens.

A token is ``dv1.<key id>.<mode>.<base64url>``: the key id lets a keyring hold several
keys, so rotating the active key rewrites nothing; the mode is ``d`` (deterministic:
the same plaintext under the same key always gives the same token, so joins, upsert
keys and erasure still match) or ``r`` (randomized: a fresh 16-byte nonce per value,
which hides equal values). The header is bound as associated data, so a token cannot be
relabelled with another key id or mode.

AES-SIV (RFC 5297) is deterministic authenticated encryption by design: with no nonce it
leaks only equality, and with one it is ordinary randomized AEAD. Its 512-bit key is
derived from the configured 32-byte key with HKDF-SHA256.

Work is per distinct value: a deterministic column is dictionary-encoded first, so a
column with repeated values (a country, a tenant) costs one encryption per value.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dativo.crypto.keyring import Keyring
from dativo.errors import CodecError, ConfigError

VERSION = "dv1"
DETERMINISTIC, RANDOMIZED = "d", "r"
NONCE_BYTES = 16
_HKDF_INFO = b"dativo column encryption v1: AES-256-SIV"
_SAMPLE = 4096  # values looked at to decide whether repeats are worth hashing
_TOKEN_KEY_ID = r"^dv1\.(?P<key_id>[A-Za-z0-9_-]{1,32})\.[dr]\."

_b64encode = base64.urlsafe_b64encode
_b64decode = base64.urlsafe_b64decode


def _siv(key: bytes) -> AESSIV:
    return AESSIV(HKDF(SHA256(), 64, salt=None, info=_HKDF_INFO).derive(key))


def _header(key_id: str, mode: str) -> bytes:
    return f"{VERSION}.{key_id}.{mode}".encode()


def as_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The plaintext of a column as strings: what is encrypted, and what decrypts back
    (cast to the column's type). Object and array columns have no such form."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
        return values.cast(pa.string())
    if pa.types.is_nested(values.type):
        raise ConfigError(f"a {values.type} column cannot be encrypted: encrypt its leaf "
                          "fields instead")
    return pc.cast(values, pa.string())


class ColumnCipher:
    """Encrypts and decrypts whole Arrow columns under a :class:`Keyring`."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._sivs = {key_id: _siv(key) for key_id, key in keyring.keys.items()}

    # -- encryption ---------------------------------------------------------------
    def encrypt(self, values: pa.Array | pa.ChunkedArray, *,
                randomized: bool = False) -> pa.Array:
        """String tokens of ``values`` under the active key; nulls stay null."""
        text = as_text(values)
        if randomized:
            return self._tokens(text, self._sealer(self.keyring.active_id, RANDOMIZED))
        return _per_distinct(text, self._deterministic_tokens)

    def _deterministic_tokens(self, text: pa.Array) -> pa.Array:
        """The hot loop (a million values per column per load): no call per value but
        the cipher's own, plaintext taken from Arrow as bytes."""
        key_id = self.keyring.active_id
        encrypt, header = self._sivs[key_id].encrypt, _header(key_id, DETERMINISTIC)
        prefix, associated = header + b".", [header]
        sealed = [None if plain is None else prefix + _b64encode(encrypt(plain, associated))
                  for plain in text.cast(pa.binary()).to_pylist()]
        return pa.array(sealed, pa.binary()).view(pa.string())

    def encrypt_text(self, text: str, *, randomized: bool = False) -> str:
        """One value's token under the active key (a dead-letter field, say)."""
        mode = RANDOMIZED if randomized else DETERMINISTIC
        return self._sealer(self.keyring.active_id, mode)(text.encode()).decode()

    def tokens_for(self, value: object) -> list[str]:
        """The deterministic token of ``value`` under every key of the ring: what a
        stored value equal to it can be, whichever key was active when it was written.
        ``value`` is text, or a scalar (Arrow or Python) turned to text as columns are."""
        if isinstance(value, pa.Scalar):
            text = as_text(pa.array([value.as_py()], value.type))[0].as_py()
        elif isinstance(value, str):
            text = value
        else:
            text = as_text(pa.array([value]))[0].as_py()
        return [self._sealer(key_id, DETERMINISTIC)(text.encode()).decode()
                for key_id in self.keyring.keys]

    def _sealer(self, key_id: str, mode: str) -> Callable[[bytes], bytes]:
        """Plaintext bytes -> token bytes, under one key and mode."""
        encrypt = self._sivs[key_id].encrypt
        header = _header(key_id, mode)
        prefix = header + b"."
        if mode == DETERMINISTIC:
            associated = [header]
            return lambda plain: prefix + _b64encode(encrypt(plain, associated))

        def randomized(plain: bytes) -> bytes:
            nonce = os.urandom(NONCE_BYTES)
            return prefix + _b64encode(nonce + encrypt(plain, [header, nonce]))
        return randomized

    @staticmethod
    def _tokens(text: pa.Array, seal: Callable[[bytes], bytes]) -> pa.Array:
        sealed = [None if value is None else seal(value.encode())
                  for value in text.to_pylist()]
        # Tokens are ASCII by construction: a view, not a validating cast.
        return pa.array(sealed, pa.binary()).view(pa.string())

    # -- decryption ---------------------------------------------------------------
    def decrypt(self, tokens: pa.Array | pa.ChunkedArray,
                value_type: pa.DataType | None = None) -> pa.Array:
        """The plaintext of ``tokens`` as ``value_type`` (default string); nulls stay null.

        Raises:
            ConfigError: A token's key id is not in the keyring.
            CodecError: A value is not a token, or does not decrypt under its key.
        """
        text = as_text(tokens)
        plain = _per_distinct(text, lambda distinct: pa.array(
            [None if token is None else self._open(token)
             for token in distinct.to_pylist()], pa.binary()).cast(pa.string()))
        if value_type is None or value_type == pa.string():
            return plain
        return pc.cast(plain, value_type)

    def rewrap(self, tokens: pa.Array | pa.ChunkedArray) -> pa.Array:
        """``tokens`` with every value not under the active key re-encrypted under it,
        in the mode it had; values already under it are returned as they are."""
        text = as_text(tokens)
        active = self.keyring.active_id
        sealers = {mode: self._sealer(active, mode) for mode in (DETERMINISTIC, RANDOMIZED)}
        prefix = f"{VERSION}.{active}."

        def moved(token: str) -> bytes:
            if token.startswith(prefix):
                return token.encode()
            return sealers[_mode(token)](self._open(token))
        return _per_distinct(text, lambda distinct: pa.array(
            [None if token is None else moved(token) for token in distinct.to_pylist()],
            pa.binary()).cast(pa.string()))

    def _open(self, token: str) -> bytes:
        parts = token.split(".", 3)
        if len(parts) != 4 or parts[0] != VERSION or parts[2] not in (DETERMINISTIC,
                                                                      RANDOMIZED):
            raise CodecError("a value is not a dativo encrypted value (dv1.<key>.<mode>."
                             "<data>): the column holds plaintext or was altered")
        _, key_id, mode, body = parts
        siv = self._sivs.get(key_id)
        if siv is None:
            raise ConfigError(
                f"a value is encrypted under key '{key_id}', which encryption_keys does not "
                f"hold (it holds {', '.join(sorted(self._sivs))}); add key '{key_id}' back, "
                "and retire a key only after `dativo keys rewrap` has moved every value off it")
        header = _header(key_id, mode)
        try:
            sealed = _b64decode(body)
            if mode == DETERMINISTIC:
                return siv.decrypt(sealed, [header])
            return siv.decrypt(sealed[NONCE_BYTES:], [header, sealed[:NONCE_BYTES]])
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise CodecError(
                f"a value encrypted under key '{key_id}' does not decrypt: the key configured "
                f"as '{key_id}' is not the one that encrypted it, or the value was "
                "altered") from exc

    @staticmethod
    def key_ids(tokens: pa.Array | pa.ChunkedArray) -> set[str]:
        """The key ids ``tokens`` are encrypted under (what a rotation still needs)."""
        text = as_text(tokens)
        # struct_field keeps the null of a value that is no token (.field would not)
        found = pc.struct_field(pc.extract_regex(text.drop_null(), _TOKEN_KEY_ID), "key_id")
        return {key_id for key_id in pc.unique(found).to_pylist() if key_id is not None}


def _mode(token: str) -> str:
    parts = token.split(".", 3)
    return parts[2] if len(parts) == 4 else DETERMINISTIC


def _per_distinct(text: pa.Array, convert: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``convert`` applied once per distinct value when that saves work, else per value.
    A sample decides, so a column of distinct values (emails) pays no hashing pass."""
    sample = text.slice(0, _SAMPLE)
    if len(text) < _SAMPLE or len(pc.unique(sample)) * 4 > len(sample) * 3:
        return convert(text)
    encoded = text.dictionary_encode()
    if len(encoded.dictionary) * 4 > len(text) * 3:
        return convert(text)
    return convert(encoded.dictionary).take(encoded.indices)

