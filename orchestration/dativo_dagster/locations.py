"""One Dagster code location per tenant: ``dativo_dagster.locations.<tenant>`` is the
tenant's Definitions, so workspace.yaml lists each tenant as

    - python_module: {module_name: dativo_dagster.locations, attribute: demo,
                      location_name: demo}

A tenant's location loads (and fails) on its own, and its runs never see another
tenant's assets or plugin settings.
"""

from __future__ import annotations

import dagster as dg

from dativo_dagster.definitions import build_definitions

_BUILT: dict[str, dg.Definitions] = {}


def __getattr__(name: str) -> dg.Definitions:
    """The Definitions of tenant ``name`` (PEP 562), built once per process."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _BUILT:
        _BUILT[name] = build_definitions(tenant=name)
    return _BUILT[name]
