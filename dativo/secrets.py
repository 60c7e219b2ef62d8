"""Secret references: a secret setting of any plugin may name where its value lives.

* ``env:NAME``: the environment variable ``NAME``;
* ``file:/path``: the file's text without its trailing newline (a relative path is
  relative to the working directory), read again on every resolve, so a rotated file
  (a Kubernetes or Docker secret) takes effect on the next connect without a restart;
* ``vault:<mount>/<path>#<key>``: ``key`` of the HashiCorp Vault KV v2 secret ``<path>``
  under the mount ``<mount>`` (``vault:secret/crm#password`` is what ``vault kv get
  secret/crm`` shows), through ``hvac`` (extra ``dativo-core[vault]``) with
  ``VAULT_ADDR``, ``VAULT_TOKEN`` or ``VAULT_TOKEN_FILE``, and ``VAULT_NAMESPACE``;
* anything else is the value itself.

Plugins resolve at connect time, not at start-up (:func:`resolve_settings`,
:func:`with_fresh_secrets`), and a connect that fails is retried once when a secret
resolved again has changed: the file was rotated between the read and the refusal.
Every resolved value is added to the log redactor; no error names a value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from dativo.errors import ConfigError
from dativo.logs import register_secrets

LOGGER = logging.getLogger(__name__)
PREFIXES = ("env:", "file:", "vault:")
MIN_REDACTED = 4
"""Shorter resolved values are not masked in logs (they would mask ordinary text),
like :func:`dativo.logs.secret_values`."""
VAULT_TIMEOUT = 10
T = TypeVar("T")


def is_reference(value: object) -> bool:
    """``value`` is a secret reference (``env:``, ``file:``, ``vault:``), not a literal."""
    return isinstance(value, str) and value.startswith(PREFIXES)


def resolve_secret(value: str, *, setting: str) -> str:
    """The secret ``value`` refers to, or ``value`` itself when it is a literal.

    Raises:
        ConfigError: The variable, file, Vault secret or key is missing or unreadable;
            the message names ``setting`` and what to do, never a value.
    """
    if not is_reference(value):
        return value
    kind, _, rest = value.partition(":")
    if kind == "env":
        resolved = _from_env(rest, setting)
    elif kind == "file":
        resolved = _from_file(rest, setting)
    else:
        resolved = _from_vault(rest, setting)
    if len(resolved) >= MIN_REDACTED:
        register_secrets([resolved])
    return resolved


def resolve_settings(config: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A copy of ``config`` with the references among the settings ``names`` resolved
    now (for one connect); other settings and literals are kept as they are."""
    resolved = dict(config)
    for name in names:
        value = config.get(name)
        if is_reference(value):
            resolved[name] = resolve_secret(value, setting=name)
    return resolved


def has_references(config: Mapping[str, Any], names: Iterable[str]) -> bool:
    """Some setting of ``names`` is a reference (so resolving again may change it)."""
    return any(is_reference(config.get(name)) for name in names)


def with_fresh_secrets(connect: Callable[[dict[str, Any]], T], config: Mapping[str, Any],
                       names: Iterable[str], *,
                       retry_on: Callable[[BaseException], bool] = lambda _exc: True) -> T:
    """``connect(settings)`` with ``config``'s secret references resolved now; when it
    fails (and ``retry_on`` says the failure may be the secret's, such as a refused
    login), the references are resolved once more and, if a value changed, ``connect``
    is called once more with the new values. Otherwise the first failure is raised.

    This is the one connect rule of every plugin: a secret rotated between our read and
    the server's check costs one retry, not a failed run."""
    names = tuple(names)
    settings = resolve_settings(config, names)
    try:
        return connect(settings)
    except Exception as exc:
        if not has_references(config, names) or not retry_on(exc):
            raise
        again = resolve_settings(config, names)
        if all(again.get(n) == settings.get(n) for n in names):
            raise
        changed = [n for n in names if again.get(n) != settings.get(n)]
        LOGGER.info("Connect failed; %s changed since it was read, retrying once with the "
                    "new value", ", ".join(changed))
        return connect(again)


class FreshSecret:
    """One secret setting of an API client: resolved when the client is made, and
    again when the API refuses it (:meth:`refreshed`), so a key rotated in its file or
    in Vault is picked up by a running tap: the request is retried once with it."""

    def __init__(self, value: str, *, setting: str) -> None:
        self.reference = value
        self.setting = setting
        self.value = resolve_secret(value, setting=setting)

    def refreshed(self) -> bool:
        """Resolve again after a refusal; True when the value changed (retry with
        :attr:`value`), False when retrying could not help."""
        if not is_reference(self.reference):
            return False
        new = resolve_secret(self.reference, setting=self.setting)
        changed, self.value = new != self.value, new
        if changed:
            LOGGER.info("Setting '%s' was refused and has changed since it was read; "
                        "retrying once with the new value", self.setting)
        return changed


def _from_env(name: str, setting: str) -> str:
    if not name:
        raise ConfigError(f"setting '{setting}': the env reference names no variable; write "
                          "env:NAME")
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"setting '{setting}': environment variable {name} is not set; "
                          f"export it or give '{setting}' another value")
    return value


def _from_file(path: str, setting: str) -> str:
    if not path:
        raise ConfigError(f"setting '{setting}': the file reference names no file; write "
                          "file:/path")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"setting '{setting}': the file {path} does not exist; create it or "
                          f"point '{setting}' at the secret's file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"setting '{setting}': the file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"setting '{setting}': cannot read file {path}: "
                          f"{exc.strerror or type(exc).__name__}; check its permissions"
                          ) from None
    return text.removesuffix("\n").removesuffix("\r")


def _from_vault(reference: str, setting: str) -> str:
    path, _, key = reference.partition("#")
    mount, _, secret = path.strip("/").partition("/")
    if not key or not secret:
        raise ConfigError(f"setting '{setting}': the reference vault:{reference} is not "
                          "vault:<mount>/<path>#<key>; e.g. vault:secret/crm#password")
    if secret.startswith("data/"):
        raise ConfigError(f"setting '{setting}': the reference vault:{reference} names the "
                          f"API path; write vault:{mount}/{secret.removeprefix('data/')}#{key} "
                          "(the path as `vault kv get` takes it, without data/)")
    client = vault_client(setting)
    hvac_exceptions = _hvac(setting).exceptions
    where = f"the secret {mount}/{secret}"
    try:
        response = client.secrets.kv.v2.read_secret_version(
            path=secret, mount_point=mount, raise_on_deleted_version=True)
    except hvac_exceptions.InvalidPath:
        raise ConfigError(f"setting '{setting}': {where} does not exist in Vault (or is deleted); "
                          "write it with `vault kv put`") from None
    except (hvac_exceptions.Forbidden, hvac_exceptions.Unauthorized):
        raise ConfigError(f"setting '{setting}': reading {where} from Vault was refused: "
                          "the token is invalid or its policy does not allow it; check "
                          "VAULT_TOKEN (or VAULT_TOKEN_FILE)") from None
    except hvac_exceptions.VaultError as exc:
        raise ConfigError(f"setting '{setting}': reading {where} from Vault failed: "
                          f"{_first_line(exc)}") from None
    except OSError as exc:  # requests' ConnectionError, timeouts
        raise ConfigError(f"setting '{setting}': cannot reach Vault at "
                          f"{os.environ.get('VAULT_ADDR')}: {type(exc).__name__}; check "
                          "VAULT_ADDR and that Vault is up") from None
    data = (response.get("data") or {}).get("data") or {}
    if key not in data:
        raise ConfigError(f"setting '{setting}': {where} in Vault has no key {key!r}; its keys: "
                          f"{sorted(data)}")
    value = data[key]
    return value if isinstance(value, str) else str(value)


def vault_client(setting: str) -> Any:
    """An ``hvac`` client from ``VAULT_ADDR``, ``VAULT_TOKEN`` (or ``VAULT_TOKEN_FILE``,
    read now) and ``VAULT_NAMESPACE``; for KV reads and the transit key provider.

    Raises:
        ConfigError: hvac is not installed, or the address or token is not set.
    """
    hvac = _hvac(setting)
    address = os.environ.get("VAULT_ADDR")
    if not address:
        raise ConfigError(f"setting '{setting}': the variable VAULT_ADDR is not set; "
                          "export the Vault address (e.g. https://vault.example.com:8200)")
    token = os.environ.get("VAULT_TOKEN")
    if not token and os.environ.get("VAULT_TOKEN_FILE"):
        token = _from_file(os.environ["VAULT_TOKEN_FILE"], "VAULT_TOKEN_FILE").strip()
    if not token:
        raise ConfigError(f"setting '{setting}': no token to read Vault with; set "
                          "VAULT_TOKEN or VAULT_TOKEN_FILE to a token that may read it")
    register_secrets([token] if len(token) >= MIN_REDACTED else [])
    return hvac.Client(url=address, token=token, namespace=os.environ.get("VAULT_NAMESPACE"),
                       timeout=VAULT_TIMEOUT)


def _hvac(setting: str) -> Any:
    try:
        import hvac
    except ImportError:
        raise ConfigError(f"setting '{setting}': references to Vault need hvac; install "
                          "dativo-core[vault] (pip install 'dativo-core[vault]')") from None
    return hvac


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
