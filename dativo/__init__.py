"""Dativo shared core: contracts, errors and helpers used by every plugin.

Dependency rule: plugins import ``dativo``; ``dativo`` never imports a plugin
package. These modules build on ``singer_sdk``: those shared by the taps only
(``tap_runtime``, ``file_taps``, ``sql_taps``, ``batch_files``,
``resilience_settings``), the schemas the taps and the target share
(``observability_settings``, ``rejected_rows``) and, when called,
``schema_messages`` (the plugins' config validator) and ``logs`` (its JSON formatter).
The contracts and the rest do not.
"""

from __future__ import annotations

__version__ = "0.1.0"
