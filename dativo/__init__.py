"""Dativo shared core: contracts, errors and helpers used by every plugin.

Dependency rule: plugins import ``dativo``; ``dativo`` never imports ``singer_sdk``
or any plugin package.
"""

from __future__ import annotations

__version__ = "0.1.0"
