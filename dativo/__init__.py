"""Dativo shared core: contracts, errors and helpers used by every plugin.

Dependency rule: plugins import ``dativo``; ``dativo`` never imports a plugin
package. The modules shared by the taps only (``tap_runtime``, ``file_taps``,
``batch_files``) build on ``singer_sdk``; the contracts and the rest do not.
"""

from __future__ import annotations

__version__ = "0.1.0"
