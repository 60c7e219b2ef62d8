"""Where encryption keys come from: secret references and KMS-style key providers.

A key is 32 random bytes, given base64 (``dativo keys new`` prints one). A setting of
``encryption_keys`` names it in one of these forms (:func:`resolve_key`):

* a secret reference, ``env:NAME``, ``file:/path`` or ``vault:<mount>/<path>#<key>``
  (:mod:`dativo.secrets`), whose value is the base64 key;
* ``kms:local:<master key file>#<base64 wrapped key>``: the key wrapped (AES-256-GCM-SIV)
  under a master key kept in a file (:class:`LocalFileKeyProvider`); the config holds
  only the wrapped key, the file can live on a separate volume;
* ``kms:vault-transit:<transit key>#<vault:v1:...>``: the key wrapped by Vault's transit
  engine (:class:`VaultTransitKeyProvider`); Vault unwraps it and never hands out the
  master key.

Key material never reaches a log or an error message: every key (and its base64 text)
is registered with the log redactor.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from dativo.errors import ConfigError
from dativo.logs import register_secrets
from dativo.secrets import resolve_secret, vault_client

KEY_BYTES = 32
NONCE_BYTES = 12
WRAP_CONTEXT = b"dativo key wrap v1"
"""Associated data of a locally wrapped key: a wrapped key of another tool (same
master key, other purpose) does not unwrap as ours."""
TRANSIT_MOUNT_ENV = "VAULT_TRANSIT_MOUNT"
NEW_KEY_HINT = "`dativo keys new` makes one"


class KeyProvider(Protocol):
    """A KMS-style provider: it turns a wrapped (encrypted) key into the key."""

    def unwrap(self, wrapped: bytes) -> bytes:
        """The 32-byte key ``wrapped`` holds.

        Raises:
            ConfigError: The wrapped key is not the provider's, or it is unreachable.
        """
        ...


def decode_key(text: str, *, setting: str) -> bytes:
    """32 bytes from base64 text (standard or URL-safe alphabet).

    Raises:
        ConfigError: Not base64, or not 32 bytes; names ``setting``, never the text.
    """
    compact = "".join(text.split())
    try:
        key = base64.b64decode(compact.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"setting '{setting}': the key is not base64; a key is "
                          f"{KEY_BYTES} random bytes in base64 ({NEW_KEY_HINT})") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"setting '{setting}': the key is {len(key)} bytes, not "
                          f"{KEY_BYTES}; {NEW_KEY_HINT}")
    _register(key)
    return key


def resolve_key(spec: str, *, setting: str) -> bytes:
    """The 32-byte key ``spec`` names (module doc for the forms).

    Raises:
        ConfigError: The reference, provider or key is invalid; names ``setting``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"setting '{setting}': expected a key reference (env:NAME, "
                          "file:/path, vault:<mount>/<path>#<key> or kms:...); "
                          f"{NEW_KEY_HINT}")
    if spec.startswith("kms:"):
        return _from_kms(spec, setting)
    text = resolve_secret(spec, setting=setting)
    if text == spec:
        register_secrets([text])  # a key given literally is a secret too
    return decode_key(text, setting=setting)


class LocalFileKeyProvider:
    """Keys wrapped with AES-256-GCM-SIV under a master key in a file.

    The file holds the master key in base64 (``dativo keys new > master.key``); it is
    read on each call, so replacing it takes effect without a restart. A wrapped key is
    ``nonce (12 bytes) + ciphertext``, given base64 in ``kms:local:<file>#<wrapped>``.
    """

    def __init__(self, master_key_file: str | os.PathLike[str], *,
                 setting: str = "master key") -> None:
        self.path = Path(master_key_file)
        self.setting = setting

    def _master(self) -> AESGCMSIV:
        text = resolve_secret(f"file:{self.path}", setting=self.setting)
        return AESGCMSIV(decode_key(text, setting=self.setting))

    def wrap(self, key: bytes) -> bytes:
        """``key`` wrapped under the master key (to put in ``kms:local:...#<base64>``)."""
        if len(key) != KEY_BYTES:
            raise ConfigError(f"setting '{self.setting}': can only wrap a {KEY_BYTES}-byte "
                              f"key, not {len(key)} bytes; {NEW_KEY_HINT}")
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._master().encrypt(nonce, key, WRAP_CONTEXT)

    def unwrap(self, wrapped: bytes) -> bytes:
        master = self._master()
        nonce, ciphertext = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        try:
            key = master.decrypt(nonce, ciphertext, WRAP_CONTEXT)
        except (InvalidTag, ValueError):
            raise ConfigError(f"setting '{self.setting}': the wrapped key does not unwrap "
                              f"with the master key in {self.path}; it was wrapped under "
                              "another master key, or it is damaged") from None
        if len(key) != KEY_BYTES:
            raise ConfigError(f"setting '{self.setting}': the unwrapped key is {len(key)} "
                              f"bytes, not {KEY_BYTES}; {NEW_KEY_HINT}")
        _register(key)
        return key


class VaultTransitKeyProvider:
    """Keys wrapped by a Vault transit key (``vault write transit/encrypt/<name>``).

    The client comes from ``VAULT_ADDR``, ``VAULT_TOKEN``/``VAULT_TOKEN_FILE`` and
    ``VAULT_NAMESPACE`` (:func:`dativo.secrets.vault_client`); the transit engine's mount
    is ``transit`` unless ``VAULT_TRANSIT_MOUNT`` says otherwise.
    """

    def __init__(self, key_name: str, *, setting: str = "transit key",
                 mount_point: str | None = None) -> None:
        self.key_name = key_name
        self.setting = setting
        self.mount_point = mount_point or os.environ.get(TRANSIT_MOUNT_ENV) or "transit"

    def wrap(self, key: bytes) -> bytes:
        """``key`` encrypted by Vault: the ``vault:v1:...`` ciphertext, as bytes."""
        response = self._call("encrypt", lambda transit: transit.encrypt_data(
            self.key_name, plaintext=base64.b64encode(key).decode(),
            mount_point=self.mount_point))
        return str(response["data"]["ciphertext"]).encode()

    def unwrap(self, wrapped: bytes) -> bytes:
        response = self._call("decrypt", lambda transit: transit.decrypt_data(
            self.key_name, ciphertext=wrapped.decode(), mount_point=self.mount_point))
        plaintext = str(response["data"]["plaintext"])
        _register_text(plaintext)
        return decode_key(plaintext, setting=self.setting)

    def _call(self, action: str, call: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        client = vault_client(self.setting)  # a ConfigError when hvac is not installed
        import hvac.exceptions

        where = f"the transit key {self.key_name!r} (mount {self.mount_point})"
        doing = {"encrypt": "encrypting", "decrypt": "decrypting"}[action]
        try:
            return call(client.secrets.transit)
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            raise ConfigError(f"setting '{self.setting}': {doing} with {where} was refused "
                              "by Vault: the token is invalid or its policy does not allow "
                              "it; check VAULT_TOKEN (or VAULT_TOKEN_FILE)") from None
        except hvac.exceptions.InvalidPath:
            raise ConfigError(f"setting '{self.setting}': {where} does not exist in Vault; "
                              f"create it with `vault write -f {self.mount_point}/keys/"
                              f"{self.key_name}`") from None
        except hvac.exceptions.VaultError as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"setting '{self.setting}': {doing} with {where} failed in "
                              f"Vault: {reason}") from None
        except OSError as exc:
            raise ConfigError(f"setting '{self.setting}': cannot reach Vault at "
                              f"{os.environ.get('VAULT_ADDR')}: {type(exc).__name__}; "
                              "check VAULT_ADDR and that Vault is up") from None


def _from_kms(spec: str, setting: str) -> bytes:
    provider, _, rest = spec.removeprefix("kms:").partition(":")
    where, _, wrapped = rest.rpartition("#")
    if provider == "local":
        if not where or not wrapped:
            raise ConfigError(f"setting '{setting}': expected kms:local:<master key file>"
                              "#<base64 wrapped key>")
        try:
            raw = base64.b64decode(wrapped.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"setting '{setting}': the wrapped key after '#' is not "
                              "base64") from None
        return LocalFileKeyProvider(where, setting=setting).unwrap(raw)
    if provider == "vault-transit":
        if not where or not wrapped.startswith("vault:"):
            raise ConfigError(f"setting '{setting}': expected kms:vault-transit:<transit "
                              "key name>#vault:v1:<ciphertext>")
        return VaultTransitKeyProvider(where, setting=setting).unwrap(wrapped.encode())
    raise ConfigError(f"setting '{setting}': unknown key provider kms:{provider}; use "
                      "kms:local:<master key file>#<wrapped> or "
                      "kms:vault-transit:<key name>#<vault:v1:...>")


def _register(key: bytes) -> None:
    """Mask the key's base64 forms in every log (the raw bytes never reach text)."""
    register_secrets({base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode(),
                      base64.b64encode(key).decode().rstrip("=")})


def _register_text(text: str) -> None:
    if len(text) >= 4:
        register_secrets([text])
