"""Generate a throwaway Meltano project that runs the file tap into target-dativo-iceberg.

The project is minimal: ``project_id``, ``default_environment`` and one environment
(``bench``), a custom extractor ``tap-bench-file`` (no ``pip_url``; its executable is
a generated shell wrapper around ``bench/file_tap.py``) and the loader
``target-dativo-iceberg`` (no ``pip_url``; executable is the venv's console script).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bench import BENCH_DIR

PROJECT_ID = "00000000-0000-4000-8000-0000000be4c4"
ENVIRONMENT = "bench"
EXTRACTOR = "tap-bench-file"
LOADER = "target-dativo-iceberg"


def write_project(
    project_dir: Path,
    *,
    events_file: Path,
    target_executable: Path,
    target_config: Mapping[str, Any],
    python: Path | None = None,
) -> Path:
    """(Re)create ``project_dir`` with a ``meltano.yml``; return the project dir.

    Any previous project (including its ``.meltano`` system database and state) is
    removed, so each benchmark run starts cold.
    """
    if project_dir.exists():
        shutil.rmtree(project_dir)
    project_dir.mkdir(parents=True)
    python = python or Path(sys.executable)
    wrapper = project_dir / f"{EXTRACTOR}.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec "{python}" "{BENCH_DIR / "file_tap.py"}" "{events_file.resolve()}" "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    settings = [{"name": key, "kind": "object" if isinstance(value, Mapping) else "string"}
                for key, value in target_config.items()]
    project = {
        "project_id": PROJECT_ID,
        "send_anonymous_usage_stats": False,
        "default_environment": ENVIRONMENT,
        "environments": [{"name": ENVIRONMENT}],
        "plugins": {
            "extractors": [{
                "name": EXTRACTOR,
                "namespace": "tap_bench_file",
                "executable": str(wrapper),
            }],
            "loaders": [{
                "name": LOADER,
                "namespace": "target_dativo_iceberg",
                "executable": str(target_executable),
                "settings": settings,
                "config": dict(target_config),
            }],
        },
    }
    (project_dir / "meltano.yml").write_text(
        yaml.safe_dump(project, sort_keys=False), encoding="utf-8"
    )
    return project_dir


def run_command(meltano: Path) -> list[str]:
    """The ``meltano run`` command line (run it with cwd = the project dir)."""
    return [str(meltano), "--environment", ENVIRONMENT, "run", EXTRACTOR, LOADER]
