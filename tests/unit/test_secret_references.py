"""Secret references (dativo.secrets) and key sources (dativo.crypto.providers): env and
file references, the retry on a rotated secret, key decoding and local key wrapping.
Vault, PostgreSQL and the plugin CLIs: tests/integration/test_secret_references.py."""

from __future__ import annotations

import base64
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from dativo.crypto.providers import LocalFileKeyProvider, resolve_key
from dativo.errors import ConfigError
from dativo.iceberg.catalog import open_catalog
from dativo.logs import redact
from dativo.secrets import (
    FreshSecret,
    is_reference,
    resolve_secret,
    resolve_settings,
    with_fresh_secrets,
)


def test_literals_are_kept_and_references_recognised() -> None:
    assert resolve_secret("s3cr3t-literal", setting="password") == "s3cr3t-literal"
    assert [is_reference(v) for v in ("env:X", "file:/x", "vault:a/b#c", "envy", 42, None)] \
        == [True, True, True, False, False, False]


def test_env_reference_and_its_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATIVO_TEST_PG_PASSWORD", "from-the-env-8d1")
    assert resolve_secret("env:DATIVO_TEST_PG_PASSWORD", setting="password") == "from-the-env-8d1"
    monkeypatch.delenv("DATIVO_TEST_PG_PASSWORD")
    with pytest.raises(ConfigError) as error:
        resolve_secret("env:DATIVO_TEST_PG_PASSWORD", setting="password")
    assert str(error.value) == ("setting 'password': environment variable "
                                "DATIVO_TEST_PG_PASSWORD is not set; export it or give "
                                "'password' another value")


def test_file_reference_is_read_again_on_every_resolve(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pg"
    secret.write_text("first-password-1\n")
    assert resolve_secret(f"file:{secret}", setting="password") == "first-password-1"
    secret.write_text("second-password-2")  # rotated, no trailing newline
    assert resolve_secret(f"file:{secret}", setting="password") == "second-password-2"
    monkeypatch.chdir(tmp_path)  # relative to the working directory
    assert resolve_secret("file:pg", setting="password") == "second-password-2"
    secret.write_text("keeps  inner\nlines\n\n")  # only one trailing newline goes
    assert resolve_secret("file:pg", setting="password") == "keeps  inner\nlines\n"


def test_missing_file_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_secret(f"file:{tmp_path}/nope", setting="api_key")
    assert str(error.value) == (f"setting 'api_key': the file {tmp_path}/nope does not exist; "
                                "create it or point 'api_key' at the secret's file")
    assert redact(str(error.value)) == str(error.value)  # the log keeps the whole line


def test_resolved_values_are_masked_in_every_log(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("Rotating-Token-5c2e9\n")
    value = resolve_secret(f"file:{tmp_path / 'token'}", setting="access_token")
    assert redact(f"connecting with {value}") == "connecting with ***"


def test_vault_reference_forms_are_checked_before_any_request() -> None:
    with pytest.raises(ConfigError, match=r"names the API path; write "
                                          r"vault:secret/crm#password \(the path"):
        resolve_secret("vault:secret/data/crm#password", setting="password")
    with pytest.raises(ConfigError, match=r"the reference vault:secret/crm is not "
                                          r"vault:<mount>/<path>#<key>"):
        resolve_secret("vault:secret/crm", setting="password")


def test_vault_reference_without_hvac_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)  # as if hvac were not installed
    with pytest.raises(ConfigError) as error:
        resolve_secret("vault:secret/crm#password", setting="password")
    assert str(error.value) == ("setting 'password': references to Vault need hvac; install "
                                "dativo-core[vault] (pip install 'dativo-core[vault]')")


def test_with_fresh_secrets_retries_once_only_when_the_secret_changed(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("old-password")
    seen: list[str] = []

    def connect(settings: dict[str, Any]) -> str:
        seen.append(settings["password"])
        if settings["password"] != "new-password":
            secret.write_text("new-password")  # rotated after our read
            raise PermissionError("password authentication failed")
        return "connected"

    config = {"password": f"file:{secret}", "host": "h"}
    assert with_fresh_secrets(connect, config, ["password"]) == "connected"
    assert seen == ["old-password", "new-password"]

    def refuse(settings: dict[str, Any]) -> str:
        seen.append(settings["password"])
        raise PermissionError("password authentication failed")

    seen.clear()
    with pytest.raises(PermissionError):  # unchanged: no second attempt
        with_fresh_secrets(refuse, config, ["password"])
    assert seen == ["new-password"]
    seen.clear()
    with pytest.raises(PermissionError):  # a literal cannot change
        with_fresh_secrets(refuse, {"password": "literal"}, ["password"])
    assert seen == ["literal"]


def test_fresh_secret_refreshes_after_a_refusal(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk_test_old0000000000")
    key = FreshSecret(f"file:{tmp_path / 'key'}", setting="api_key")
    assert (key.value, key.refreshed()) == ("sk_test_old0000000000", False)
    (tmp_path / "key").write_text("sk_test_new1111111111\n")
    assert (key.refreshed(), key.value) == (True, "sk_test_new1111111111")
    assert FreshSecret("literal-key", setting="api_key").refreshed() is False


def test_resolve_settings_only_touches_the_named_settings(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("DATIVO_TEST_PW", "pw-from-env")
    config = {"password": "env:DATIVO_TEST_PW", "warehouse": "file:/tmp/wh", "port": 5432}
    assert resolve_settings(config, ["password"]) == {
        "password": "pw-from-env", "warehouse": "file:/tmp/wh", "port": 5432}


def test_catalog_secret_properties_are_references(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``uri`` (and secret-named properties) resolve; ``warehouse``, a location, not."""
    (tmp_path / "catalog.db").touch()
    monkeypatch.setenv("DATIVO_TEST_CATALOG_URI", f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog = open_catalog({"uri": "env:DATIVO_TEST_CATALOG_URI",
                            "warehouse": tmp_path.as_uri()})
    assert catalog.properties["uri"] == f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.delenv("DATIVO_TEST_CATALOG_URI")
    with pytest.raises(ConfigError, match="setting 'uri': environment variable "
                                          "DATIVO_TEST_CATALOG_URI is not set"):
        open_catalog({"uri": "env:DATIVO_TEST_CATALOG_URI", "warehouse": tmp_path.as_uri()})


# -- keys ------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_resolve_key_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setenv("DATIVO_TEST_KEY", _b64(key))
    assert resolve_key("env:DATIVO_TEST_KEY", setting="encryption_keys.k1") == key
    (tmp_path / "k2").write_text(base64.urlsafe_b64encode(key).decode() + "\n")
    assert resolve_key(f"file:{tmp_path / 'k2'}", setting="encryption_keys.k2") == key
    assert redact(f"key {_b64(key)}") == "key ***"


@pytest.mark.parametrize(("text", "problem"), [
    (_b64(os.urandom(16)), "the key is 16 bytes, not 32; `dativo keys new` makes one"),
    ("not base64!", "the key is not base64"),
])
def test_a_bad_key_names_the_setting(text: str, problem: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATIVO_TEST_KEY", text)
    with pytest.raises(ConfigError) as error:
        resolve_key("env:DATIVO_TEST_KEY", setting="encryption_keys.k1")
    assert str(error.value).startswith(f"setting 'encryption_keys.k1': {problem}")
    assert text not in str(error.value)


def test_local_file_provider_wraps_and_unwraps(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    master = tmp_path / "master.key"
    master.write_text(_b64(os.urandom(32)) + "\n")
    key = os.urandom(32)
    wrapped = LocalFileKeyProvider(master).wrap(key)
    assert key not in wrapped and len(wrapped) == 12 + 32 + 16
    spec = f"kms:local:{master}#{_b64(wrapped)}"
    with caplog.at_level(logging.DEBUG):
        assert resolve_key(spec, setting="encryption_keys.k1") == key
    assert _b64(key) not in caplog.text

    master.write_text(_b64(os.urandom(32)))  # another master key
    with pytest.raises(ConfigError) as error:
        resolve_key(spec, setting="encryption_keys.k1")
    assert str(error.value) == (
        f"setting 'encryption_keys.k1': the wrapped key does not unwrap with the master "
        f"key in {master}; it was wrapped under another master key, or it is damaged")


@pytest.mark.parametrize(("spec", "problem"), [
    ("kms:aws:alias/x#abc", "unknown key provider kms:aws"),
    ("kms:local:/nope#", "expected kms:local:<master key file>#<base64 wrapped key>"),
    ("kms:vault-transit:orders#abc", "expected kms:vault-transit:<transit key name>"),
    ("", "expected a key reference"),
])
def test_bad_key_specs(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"setting 'encryption_keys.k1': {problem}"):
        resolve_key(spec, setting="encryption_keys.k1")


# -- every plugin's config schema takes references for its secret settings ---------------

PLUGINS = [
    ("tap_dativo_postgres.tap", "TapDativoPostgres"),
    ("tap_dativo_mysql.tap", "TapDativoMySQL"),
    ("tap_dativo_stripe.tap", "TapDativoStripe"),
    ("tap_dativo_hubspot.tap", "TapDativoHubSpot"),
    ("tap_dativo_google_sheets.tap", "TapDativoGoogleSheets"),
    ("tap_dativo_google_drive.tap", "TapDativoGoogleDrive"),
    ("tap_dativo_salesforce.tap", "TapDativoSalesforce"),
    ("tap_dativo_snowflake.tap", "TapDativoSnowflake"),
    ("target_dativo_iceberg.target", "TargetDativoIceberg"),
]
REFERENCES = ["env:PG_PASSWORD", "file:/run/secrets/pg", "vault:secret/crm#password",
              "kms:local:/run/master.key#c2VjcmV0"]


@pytest.mark.parametrize(("module", "name"), PLUGINS)
def test_secret_settings_accept_references(module: str, name: str) -> None:
    import importlib

    from jsonschema import Draft7Validator

    plugin = getattr(importlib.import_module(module), name)
    secrets = {key: prop for key, prop in secret_properties(plugin.config_jsonschema)}
    assert secrets, f"{name} declares no secret setting"
    for key, prop in secrets.items():
        validator = Draft7Validator(prop, format_checker=Draft7Validator.FORMAT_CHECKER)
        types = prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")]
        for reference in REFERENCES:
            value: Any = {"k1": reference} if "object" in types else reference
            problems = [e.message for e in validator.iter_errors(value)]
            assert problems == [], f"{name} {key}={reference!r}: {problems}"


def secret_properties(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, schema) of every property marked secret, at any depth."""
    found = []
    for key, prop in schema.get("properties", {}).items():
        if prop.get("secret"):
            found.append((f"{prefix}{key}", prop))
        elif "properties" in prop:
            found.extend(secret_properties(prop, f"{prefix}{key}."))
    return found
