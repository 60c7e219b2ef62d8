"""dativo.iceberg.catalog: the one catalog opener of the target and the CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dativo.errors import ConfigError
from dativo.iceberg.catalog import catalog_properties, default_catalog_properties, open_catalog
from dativo.logs import SecretRedactor


def test_nested_meltano_config_is_flattened_and_named() -> None:
    nested = {"type": "sql", "uri": "sqlite:///c.db", "s3": {"endpoint": "http://s3:9000",
                                                            "region": None}}
    assert catalog_properties(nested) == {"type": "sql", "uri": "sqlite:///c.db",
                                          "s3.endpoint": "http://s3:9000", "name": "dativo"}


@pytest.mark.parametrize("config", [None, {}, {"uri": None, "s3": {"endpoint": None}}])
def test_an_empty_block_is_the_embedded_default(config: dict[str, object] | None) -> None:
    assert catalog_properties(config) == default_catalog_properties()


def test_a_reader_does_not_create_a_missing_sqlite_catalog(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(ConfigError, match="no catalog at"):
        open_catalog({"type": "sql", "uri": uri})
    assert not (tmp_path / "none.db").exists()


def test_a_writer_creates_the_local_folders(tmp_path: Path) -> None:
    catalog = open_catalog({"type": "sql",
                            "uri": f"sqlite:///{tmp_path / 'a' / 'c.db'}",
                            "warehouse": (tmp_path / "wh").as_uri()}, create=True)
    assert catalog.properties["warehouse"] == (tmp_path / "wh").as_uri()
    assert (tmp_path / "wh").is_dir() and (tmp_path / "a").is_dir()


def test_catalog_secrets_stay_out_of_the_error_and_the_logs() -> None:
    handler = logging.StreamHandler()
    redactor = SecretRedactor()
    handler.addFilter(redactor)
    logging.getLogger().addHandler(handler)
    try:
        with pytest.raises(ConfigError) as raised:
            open_catalog({"type": "rest", "uri": "http://127.0.0.1:9",
                          "credential": "client:sEcr3t-value", "nested": {"token": "tok-9876"}})
        assert redactor.redact("client:sEcr3t-value and tok-9876") == "*** and ***"
    finally:
        logging.getLogger().removeHandler(handler)
    assert "sEcr3t-value" not in str(raised.value) and "tok-9876" not in str(raised.value)
    assert str(raised.value).startswith("catalog: cannot load catalog 'dativo'")
