"""Opening a catalog: the embedded default and the one opener every command uses.

pyiceberg is imported inside :func:`open_catalog`: the target imports this module at
startup and loads pyiceberg off its critical path (see ``target_dativo_iceberg.loader``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dativo.errors import ConfigError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

DEFAULT_WAREHOUSE_DIR = Path("output/warehouse")


def default_catalog_properties(warehouse_dir: Path = DEFAULT_WAREHOUSE_DIR) -> dict[str, str]:
    """The embedded default: a SQLite SqlCatalog beside a local warehouse folder."""
    root = warehouse_dir.resolve()
    return {
        "name": "dativo",
        "type": "sql",
        "uri": f"sqlite:///{root / 'catalog.db'}",
        "warehouse": root.as_uri(),
    }


def open_catalog(properties: Mapping[str, str] | None) -> Catalog:
    """Load a pyiceberg catalog from properties (default: the embedded one).

    Raises:
        ConfigError: The catalog cannot be loaded.
    """
    props = dict(properties or default_catalog_properties())
    if props.get("uri", "").startswith("sqlite:///") and not Path(
        props["uri"].removeprefix("sqlite:///")
    ).exists():
        raise ConfigError(f"no catalog at {props['uri']}; run `make demo` or a pipeline first")
    name = props.pop("name", "dativo")
    from pyiceberg.catalog import load_catalog

    try:
        return load_catalog(name, **props)
    except Exception as exc:  # pyiceberg raises many types for bad catalog config
        raise ConfigError(f"cannot load catalog {name!r}: {exc}") from exc
