"""The environment a tenant's ``meltano`` processes get: the orchestrator's, minus every
setting of a plugin that only another tenant's runs use.

Meltano reads a plugin's settings from ``<PLUGIN_NAME>_<SETTING>`` variables, so one
Dagster deployment serving several tenants holds, say, ``TAP_DATIVO_STRIPE_API_KEY`` for
tenant acme. A variable belongs to the plugin with the longest matching prefix
(``TARGET_DATIVO_ACME_`` before ``TARGET_DATIVO_``); when that plugin is not one of the
tenant's (or one they inherit from), the variable is left out of the tenant's runs and
of the config reads its checks make. Settings shared through ``inherit_from`` stay shared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dativo_dagster.project import MeltanoProject, env_prefix


def tenant_environment(project: MeltanoProject, tenant: str,
                       base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (else ``os.environ``) without other tenants' plugin settings."""
    own = project.plugins_of(tenant)
    prefixes = sorted(((env_prefix(name), name) for name in project.inherits),
                      key=lambda item: len(item[0]), reverse=True)
    kept = {}
    for key, value in (os.environ if base is None else base).items():
        owner = next((name for prefix, name in prefixes if key.startswith(prefix)), None)
        if owner is None or owner in own:
            kept[key] = value
    return kept
