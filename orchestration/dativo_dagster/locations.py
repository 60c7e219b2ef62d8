"""One Dagster code location per tenant: ``dativo_dagster.locations.<tenant>`` is the
tenant's Definitions, so workspace.yaml lists each tenant as

    - python_module: {module_name: dativo_dagster.locations, attribute: demo,
                      location_name: demo}

A tenant's location loads (and fails) on its own, and its runs never see another
tenant's assets or plugin settings.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dativo_dagster.definitions import build_definitions, project_dir

_BUILT: dict[tuple[Path, str], dg.Definitions] = {}


def __getattr__(name: str) -> dg.Definitions:
    """The Definitions of tenant ``name`` (PEP 562) in the project ``project_dir()``,
    built once per process and project."""
    if name.startswith("__"):
        raise AttributeError(name)
    key = (project_dir().resolve(), name)
    if key not in _BUILT:
        _BUILT[key] = build_definitions(key[0], tenant=name)
    return _BUILT[key]
