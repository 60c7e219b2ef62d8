"""Run an API tap's console script as a process and collect its Singer messages."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import BIN


@dataclass(frozen=True)
class TapRun:
    """One tap process: exit code, every Singer message it wrote, and its log."""

    returncode: int
    messages: list[dict[str, Any]]
    stderr: str

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages
                if m["type"] == "RECORD" and m["stream"] == stream]

    def ids(self, stream: str) -> list[str]:
        return [r["id"] for r in self.records(stream)]

    @property
    def state(self) -> dict[str, Any]:
        """The last STATE the tap emitted."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"][-1]


def run_tap(tap: str, tmp_path: Path, config: dict[str, Any], *args: str,
            state: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None,
            timeout: float = 120) -> TapRun:
    files = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    files.mkdir()
    argv = [str(BIN / tap), "--config", str(_dump(files / "config.json", config)), *args]
    if state is not None:
        argv += ["--state", str(_dump(files / "state.json", state))]
    if catalog is not None:
        argv += ["--catalog", str(_dump(files / "catalog.json", catalog))]
    result = subprocess.run(argv, capture_output=True, timeout=timeout,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    messages = [json.loads(line) for line in result.stdout.decode().splitlines()
                if line.startswith("{") and '"type"' in line]
    return TapRun(result.returncode, messages, result.stderr.decode())


def discover(tap: str, tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    run = subprocess.run([str(BIN / tap), "--config", str(_dump(tmp_path / "d.json", config)),
                          "--discover"], capture_output=True, timeout=120, check=True)
    return dict(json.loads(run.stdout))


def select(catalog: dict[str, Any], streams: set[str]) -> dict[str, Any]:
    """Mark only ``streams`` selected (stream-level metadata)."""
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def _dump(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path
