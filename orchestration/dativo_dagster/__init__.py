"""Dagster definitions of a Meltano project of dativo plugins (docs/orchestration.md).

``dativo_dagster.defs`` is the Definitions of the tenant ``DATIVO_TENANT`` (or of the
project's only tenant) in the project ``DATIVO_MELTANO_PROJECT`` (or the working
directory); ``dativo_dagster.locations.<tenant>`` gives one code location per tenant.
Attributes are built on first access, so importing the package reads no project.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "defs":
        from dativo_dagster.definitions import build_definitions

        return build_definitions()
    raise AttributeError(f"module 'dativo_dagster' has no attribute {name!r}")
