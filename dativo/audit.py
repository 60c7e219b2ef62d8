"""Append-only JSON-lines audit log: one line per commit, saying who wrote what, when.

Regulated users need to answer "which run put these rows in that table" without
trusting logs that rotate away. Each line names the run, plugin and tenant, the table,
snapshot, operation, row/file/byte counts and the time; never a record value and
never the STATE (bookmarks can hold values). Lines are flushed and fsynced as written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson


class AuditLog:
    def __init__(self, path: Path, *, run_id: str, plugin: str, tenant: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._who = {"run_id": run_id, "plugin": plugin, "tenant": tenant}

    def record(self, what: Mapping[str, Any]) -> None:
        line = orjson.dumps({"at": datetime.now(timezone.utc).isoformat(), **self._who,
                             **what}) + b"\n"
        with open(self.path, "ab") as log:
            log.write(line)
            log.flush()
            os.fsync(log.fileno())
