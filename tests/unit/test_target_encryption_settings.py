"""The target's encryption settings: the keyring resolved at start-up, the classifications."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from dativo.errors import ConfigError
from dativo.logs import redact
from target_dativo_iceberg.settings import TargetSettings


def settings(tmp_path: Path, **more: Any) -> TargetSettings:
    return TargetSettings.from_config({
        "tenant_id": "acme",
        "catalog": {"type": "sql", "uri": f"sqlite:///{tmp_path}/c.db",
                    "warehouse": tmp_path.as_uri()}, **more})


def test_without_keys_there_is_no_keyring_and_restricted_is_encrypted(tmp_path: Path) -> None:
    plain = settings(tmp_path)
    assert plain.keyring is None
    assert plain.encryption_classifications == ("restricted",)


def test_classifications_are_matched_case_insensitively(tmp_path: Path) -> None:
    assert settings(tmp_path, encryption_classifications=[
        "Restricted", " PII ", "restricted"]).encryption_classifications == (
        "restricted", "pii")
    with pytest.raises(ConfigError, match="encryption_classifications: a classification is "
                                          "empty"):
        settings(tmp_path, encryption_classifications=["restricted", " "])


def test_keys_are_resolved_at_start_up_and_a_literal_one_is_redacted(tmp_path: Path) -> None:
    literal = base64.b64encode(os.urandom(32)).decode()
    key_file = tmp_path / "k2"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    ring = settings(tmp_path, encryption_keys={"k1": literal, "k2": f"file:{key_file}"},
                    encryption_active_key="k2").keyring
    assert ring is not None
    assert ring.active_id == "k2" and sorted(ring.keys) == ["k1", "k2"]
    assert literal not in redact(f"the key is {literal}")


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({"encryption_active_key": "k1"}, "encryption_active_key is set but encryption_keys "
                                          "is empty"),
        ({"encryption_keys": {"k1": "file:/nonexistent/k1"}}, "encryption_keys.k1"),
        ({"encryption_keys": {"k1": "env:DATIVO_TEST_UNSET_KEY_VARIABLE"}},
         "encryption_keys.k1"),
    ],
)
def test_a_keyring_that_cannot_be_built_is_a_config_error(
    tmp_path: Path, more: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, **more)
