"""Opening a catalog: the embedded default, and the one opener every command uses.

pyiceberg is imported inside :func:`open_catalog`: the target imports this module at
startup and loads pyiceberg off its critical path, on the commit thread (see
``target_dativo_iceberg.pipeline.DrainPipeline``).

Secret properties (named like secrets, ``s3.secret-access-key``, ``token``, ``credential``,
and ``uri``, which may carry a database password) may be secret references
(:mod:`dativo.secrets`), resolved each time a catalog is opened.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from dativo.errors import ConfigError
from dativo.logs import SECRET_KEY, redact_secrets, register_secrets, secret_values
from dativo.secrets import is_reference, with_fresh_secrets

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

LOGGER = logging.getLogger(__name__)

DEFAULT_WAREHOUSE_DIR = Path("output/warehouse")
CATALOG_OPEN_ATTEMPTS = 5
SECRET_PROPERTY = re.compile(rf"{SECRET_KEY.pattern}|access-key|(^|\.)uri$", re.IGNORECASE)
"""Catalog properties that may be secret references (never ``warehouse``: a
``file:`` warehouse is a location, not a reference)."""


def default_catalog_properties(warehouse_dir: Path = DEFAULT_WAREHOUSE_DIR) -> dict[str, str]:
    """The embedded default: a SQLite SqlCatalog beside a local warehouse folder."""
    root = warehouse_dir.resolve()
    return {
        "name": "dativo",
        "type": "sql",
        "uri": f"sqlite:///{root / 'catalog.db'}",
        "warehouse": root.as_uri(),
    }


def catalog_properties(config: Mapping[str, Any] | None) -> dict[str, str]:
    """pyiceberg's flat properties (``s3.endpoint``) from a ``catalog`` config block,
    named (``name``, default ``dativo``); the embedded default when it is empty.

    Meltano turns dotted setting names (``catalog.s3.endpoint``, or ``s3.endpoint:``
    in meltano.yml) into nested objects, and gives declared but unset ones as null."""
    props = _flat(config or {}) or default_catalog_properties()
    props.setdefault("name", "dativo")
    return props


def _flat(props: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in props.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif value is not None:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def open_catalog(config: Mapping[str, Any] | None, *, create: bool = False) -> Catalog:
    """Load the catalog of a ``catalog`` config block (nested or flat; default: the
    embedded one), for the target, ``dativo maintain`` and ``dativo table show``.

    Its secrets (secret-named properties, URI passwords) are added to the log
    redactor, and never appear in the error. ``create`` makes the folders of a local
    SQLite catalog and file warehouse; without it a missing SQLite file is an error
    (a reader would otherwise get an empty new catalog). Processes that start together
    on a new SqlCatalog database all create its tables; the losers see a duplicate-key
    error and retry.

    Raises:
        ConfigError: The catalog cannot be loaded (the message carries no secret).
    """
    given = catalog_properties(config)
    name = given.pop("name")
    references = [key for key, value in given.items()
                  if SECRET_PROPERTY.search(key) and is_reference(value)]
    return with_fresh_secrets(lambda props: _open(name, props, create=create),
                              given, references)


def _open(name: str, props: dict[str, str], *, create: bool) -> Catalog:
    """:func:`open_catalog` once, with the secret references resolved in ``props``."""
    register_secrets(secret_values(props))
    uri = props.get("uri", "")
    if create:
        _create_local_dirs(props)
    elif uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise ConfigError(f"no catalog at {uri}; run `make demo` or a pipeline first")
    from pyiceberg.catalog import load_catalog

    for attempt in range(1, CATALOG_OPEN_ATTEMPTS + 1):
        try:
            return load_catalog(name, **props)
        except Exception as exc:  # pyiceberg raises many types for bad catalog config
            if attempt < CATALOG_OPEN_ATTEMPTS and _lost_init_race(exc):
                LOGGER.info("Catalog %r is being set up by another process; retrying", name)
                time.sleep(0.2 * attempt)
                continue
            raise ConfigError(f"catalog: cannot load catalog {name!r}: "
                              f"{redact_secrets(str(exc), props)}") from exc
    raise AssertionError("unreachable")


def _create_local_dirs(props: Mapping[str, str]) -> None:
    """A local SQLite catalog and file:// warehouse need their folders to exist."""
    uri, warehouse = props.get("uri", ""), props.get("warehouse", "")
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if warehouse.startswith("file://"):
        Path(urlparse(warehouse).path).mkdir(parents=True, exist_ok=True)


def _lost_init_race(exc: Exception) -> bool:
    try:
        from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
    except ImportError:  # no SQL catalog support installed, so not a SqlCatalog race
        return False
    if isinstance(exc, OperationalError):  # SQLite: the other process's CREATE TABLE won
        return "already exists" in str(exc) or "database is locked" in str(exc)
    return isinstance(exc, IntegrityError | ProgrammingError)
