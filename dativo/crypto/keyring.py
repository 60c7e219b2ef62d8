"""The keys column encryption uses: every key id a stored value may name, and the active one.

Values carry the id of the key that encrypted them, so a rotation is a settings change
(add a key, make it active); old keys stay in the ring until ``dativo keys rewrap`` has
moved every value to the active one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dativo.errors import ConfigError

KEY_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")  # fullmatch


@dataclass(frozen=True)
class Keyring:
    """Key ids to 32-byte keys; ``active_id`` encrypts, every key decrypts."""

    active_id: str
    keys: Mapping[str, bytes] = field(repr=False)  # never printed

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            if not KEY_ID.fullmatch(key_id):
                raise ConfigError(f"encryption_keys: key id '{key_id}' must be 1-32 letters, "
                                  "digits, '_' or '-' (it is stored in every encrypted value)")
            if len(key) != KEY_BYTES:
                raise ConfigError(f"encryption_keys.{key_id}: a key is {KEY_BYTES} bytes, "
                                  f"this one is {len(key)}; `dativo keys new` makes one")
        if self.active_id not in self.keys:
            known = ", ".join(sorted(self.keys)) or "none"
            raise ConfigError(f"encryption_active_key: '{self.active_id}' is not a key of "
                              f"encryption_keys (they are: {known})")

    @classmethod
    def from_settings(cls, keys: Mapping[str, str] | None,
                      active: str | None) -> Keyring | None:
        """The keyring of the settings ``encryption_keys`` (key id -> secret reference)
        and ``encryption_active_key``; ``None`` when no key is configured.

        Raises:
            ConfigError: A setting is malformed or a key cannot be resolved (naming the
                setting, never the key).
        """
        if not keys:
            if active:
                raise ConfigError("encryption_active_key is set but encryption_keys is "
                                  "empty; add the key under encryption_keys")
            return None
        if not isinstance(keys, Mapping):
            raise ConfigError("encryption_keys must be an object of key id -> key reference, "
                              'e.g. {"k1": "env:DATIVO_KEY_K1"}')
        from dativo.crypto.providers import resolve_key

        resolved: dict[str, bytes] = {}
        for key_id, spec in keys.items():
            if not isinstance(spec, str) or not spec:
                raise ConfigError(f"encryption_keys.{key_id}: expected a key reference such as "
                                  f"env:NAME, file:/path or vault:path#key")
            resolved[str(key_id)] = resolve_key(spec, setting=f"encryption_keys.{key_id}")
        if active is None:
            if len(resolved) > 1:
                raise ConfigError("encryption_active_key: required when encryption_keys holds "
                                  f"more than one key ({', '.join(sorted(resolved))}); name "
                                  "the one that encrypts new values")
            active = next(iter(resolved))
        return cls(active, resolved)

    def without(self, key_id: str) -> Keyring:
        """This keyring with ``key_id`` retired (it cannot be the active key)."""
        return Keyring(self.active_id, {k: v for k, v in self.keys.items() if k != key_id})

    def with_active(self, key_id: str) -> Keyring:
        return Keyring(key_id, self.keys)
