"""One JSON file per plugin process, so an orchestrator learns how a run ended without
parsing logs.

When ``DATIVO_RUN_REPORT_DIR`` names a directory, every dativo plugin (each tap, the
target) writes ``<dir>/<plugin>-<pid>.json`` as it ends, success or failure::

    {"plugin": "target-dativo-iceberg", "kind": "target", "exit_code": 0,
     "retriable": false, "error": null, "summary": {...}}

``exit_code`` is :mod:`dativo.exit_codes`' (0, 1, 2 or 75; ``retriable`` is 75), ``error``
the one redacted error line, ``summary`` the target's run summary (as far as known on a
failure) or a tap's ``{"records": {"<stream>": n}}``. The file is written to
``<name>.tmp`` and renamed, so a reader never sees half of it. A report that cannot be
written is a warning on stderr: it never changes how the run ends.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import orjson

from dativo.exit_codes import RETRIABLE
from dativo.logs import redact

ENV_VAR = "DATIVO_RUN_REPORT_DIR"
LOGGER = logging.getLogger(__name__)
Kind = Literal["target", "tap"]


def report_path(plugin: str, directory: str | os.PathLike[str] | None = None) -> Path | None:
    """Where this process's report goes; None when ``DATIVO_RUN_REPORT_DIR`` is unset."""
    where = directory if directory is not None else os.environ.get(ENV_VAR)
    if not where:
        return None
    return Path(where) / f"{plugin}-{os.getpid()}.json"


def write_report(plugin: str, kind: Kind, exit_code: int, error: str | None,
                 summary: dict[str, Any] | None) -> Path | None:
    """Write this process's report (a no-op without ``DATIVO_RUN_REPORT_DIR``); return
    its path, or None when none was written.

    A missing or unwritable directory, or a summary orjson cannot encode, is one
    WARNING line (on stderr): the report is a by-product, never a reason to fail a run.
    """
    path = report_path(plugin)
    if path is None:
        return None
    report = {
        "plugin": plugin,
        "kind": kind,
        "exit_code": exit_code,
        "retriable": exit_code == RETRIABLE,
        "error": redact(error) if error is not None else None,
        "summary": summary,
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_NON_STR_KEYS))
        os.replace(tmp, path)
    except (OSError, TypeError) as exc:  # orjson.JSONEncodeError is a TypeError
        LOGGER.warning("The run report %s could not be written (%s); check that %s names an "
                       "existing, writable directory", path, exc, ENV_VAR)
        return None
    return path
