"""A HashiCorp Vault fixture server speaking Vault's HTTP API on a real loopback socket.

There is no Vault binary on the test machines (and none to install from the package
lists), so this server implements the part of Vault's wire format dativo uses, and the
tests drive it through the real ``hvac`` client, as a user's Vault would be:

* ``X-Vault-Token`` on every request: a missing or unknown token answers 403 with
  Vault's ``{"errors": ["permission denied"]}``; ``X-Vault-Namespace``, when sent, must be
  :attr:`VaultApi.namespace` (else 403 too, as a token of another namespace);
* KV v2 reads, ``GET /v1/<mount>/data/<path>``: ``{"data": {"data": {...}, "metadata":
  {...}}}``; a missing secret answers 404 with ``{"errors": []}`` (Vault's shape);
* transit, ``POST /v1/<mount>/encrypt/<key>`` and ``/decrypt/<key>`` with base64
  ``plaintext`` / ``vault:v1:`` ``ciphertext``: real AES-GCM under a per-key random key,
  so a ciphertext only decrypts with the key that made it. Encrypting creates the key,
  as Vault does; decrypting with an unknown key answers 400 ``encryption key not found``,
  a damaged ciphertext 400 ``invalid ciphertext``;
* any other path: 404 ``{"errors": []}``.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.services.http_fixture import FixtureApi, Request, Response, json_response

ROOT_TOKEN = "hvs.fixture-root-token-0123456789"
KV_MOUNT = "secret"
TRANSIT_MOUNT = "transit"


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
            "lease_duration": 0, "data": data, "wrap_info": None, "warnings": None,
            "auth": None, "mount_type": ""}


def _errors(status: int, *errors: str) -> Response:
    return json_response(status, {"errors": list(errors)})


@dataclass
class VaultApi(FixtureApi):
    """Vault's KV v2 and transit over in-memory state; see the module doc.

    ``kv`` maps ``(mount, path)`` to the secret's key/value data; ``transit_keys`` maps
    a transit key name to its AES key. :meth:`put` writes a new version, like
    ``vault kv put``.
    """

    tokens: set[str] = field(default_factory=lambda: {ROOT_TOKEN})
    namespace: str | None = None
    kv: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    transit_keys: dict[str, bytes] = field(default_factory=dict)

    def put(self, path: str, data: dict[str, Any], *, mount: str = KV_MOUNT) -> None:
        with self.lock:
            self.kv[(mount, path)] = dict(data)
            self.versions[(mount, path)] = self.versions.get((mount, path), 0) + 1

    def env(self, token: str = ROOT_TOKEN) -> dict[str, str]:
        """The environment a Vault client of this server runs with."""
        env = {"VAULT_ADDR": self.url, "VAULT_TOKEN": token}
        if self.namespace:
            env["VAULT_NAMESPACE"] = self.namespace
        return env

    def error_body(self, status: int) -> dict[str, Any]:
        return {"errors": [f"fixture fault {status}"]}

    def route(self, request: Request) -> Response:
        token = request.headers.get("x-vault-token")
        namespace = request.headers.get("x-vault-namespace")
        if token not in self.tokens or (self.namespace is not None
                                        and namespace != self.namespace):
            return _errors(403, "permission denied")
        parts = request.path.removeprefix("/v1/").split("/")
        if len(parts) >= 3 and parts[1] == "data" and request.method == "GET":
            return self._kv_read(parts[0], "/".join(parts[2:]))
        if len(parts) == 3 and parts[0] == TRANSIT_MOUNT and request.method == "POST":
            action, key = parts[1], parts[2]
            if action == "encrypt":
                return self._encrypt(key, (request.body or {}).get("plaintext"))
            if action == "decrypt":
                return self._decrypt(key, (request.body or {}).get("ciphertext"))
        return _errors(404)

    def _kv_read(self, mount: str, path: str) -> Response:
        with self.lock:
            data = self.kv.get((mount, path))
            version = self.versions.get((mount, path), 0)
        if data is None:
            return _errors(404)
        metadata = {"created_time": "2026-01-01T00:00:00.000000Z", "custom_metadata": None,
                    "deletion_time": "", "destroyed": False, "version": version}
        return json_response(200, _envelope({"data": data, "metadata": metadata}))

    def _encrypt(self, name: str, plaintext: Any) -> Response:
        try:
            raw = base64.b64decode(str(plaintext), validate=True)
        except (binascii.Error, ValueError):
            return _errors(400, "illegal base64 data at input byte 0")
        with self.lock:
            key = self.transit_keys.setdefault(name, AESGCM.generate_key(bit_length=256))
        nonce = os.urandom(12)
        sealed = base64.b64encode(nonce + AESGCM(key).encrypt(nonce, raw, None)).decode()
        return json_response(200, _envelope({"ciphertext": f"vault:v1:{sealed}",
                                             "key_version": 1}))

    def _decrypt(self, name: str, ciphertext: Any) -> Response:
        with self.lock:
            key = self.transit_keys.get(name)
        if key is None:
            return _errors(400, "encryption key not found")
        text = str(ciphertext)
        if not text.startswith("vault:v1:"):
            return _errors(400, "invalid ciphertext: no prefix")
        try:
            sealed = base64.b64decode(text.removeprefix("vault:v1:"), validate=True)
            raw = AESGCM(key).decrypt(sealed[:12], sealed[12:], None)
        except (binascii.Error, ValueError, InvalidTag):
            return _errors(400, "invalid ciphertext: unable to decrypt")
        return json_response(200, _envelope({"plaintext": base64.b64encode(raw).decode()}))
