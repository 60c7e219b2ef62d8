"""Venv size of each plugin, installed the way `meltano install` installs it.

Meltano 4.4's default venv backend is uv: ``uv venv`` then ``uv pip install <pip_url>``
(no pip, no bytecode compiled up front). This builds one fresh venv per plugin from the
local distributions (non-editable: dativo-core plus the plugin's own directory, no
extras) and reports its disk use (``du``: each file's blocks, a hard-linked file once),
its number of distributions and the largest ones, against the goals: a tap <= 120 MB,
the target <= 350 MB (a venv over its goal is marked; the exit code stays 0).

    .venv/bin/python -m bench.venv_sizes             # every plugin (make sizes)
    .venv/bin/python -m bench.venv_sizes tap-dativo-csv --keep /tmp/venvs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
TAP_GOAL_MB = 120
TARGET_GOAL_MB = 350
# Plugin -> its distribution directory; each venv gets dativo/ as well.
PLUGINS = {
    "tap-dativo-csv": "taps/tap_dativo_csv",
    "tap-dativo-markdown-kv": "taps/tap_dativo_markdown_kv",
    "tap-dativo-postgres": "taps/tap_dativo_postgres",
    "tap-dativo-mysql": "taps/tap_dativo_mysql",
    "tap-dativo-stripe": "taps/tap_dativo_stripe",
    "tap-dativo-hubspot": "taps/tap_dativo_hubspot",
    "tap-dativo-google-sheets": "taps/tap_dativo_google_sheets",
    "tap-dativo-google-drive": "taps/tap_dativo_google_drive",
    "tap-dativo-salesforce": "taps/tap_dativo_salesforce",
    "tap-dativo-snowflake": "taps/tap_dativo_snowflake",
    "target-dativo-iceberg": "targets/target_dativo_iceberg",
}
# Sizes of every installed distribution (files its RECORD lists), run in the venv.
_DIST_SIZES = """
import importlib.metadata as md, json, os
sizes = {}
for dist in md.distributions():
    total = 0
    for file in dist.files or ():
        path = dist.locate_file(file)
        if os.path.isfile(path):
            total += os.path.getsize(path)
    sizes[dist.metadata["Name"]] = total
print(json.dumps(sizes))
"""


@dataclass(frozen=True)
class VenvSize:
    """One plugin's venv: disk use, distributions, and their sizes in bytes."""

    plugin: str
    disk_bytes: int
    distributions: dict[str, int]

    @property
    def goal_mb(self) -> int:
        return TARGET_GOAL_MB if self.plugin.startswith("target-") else TAP_GOAL_MB

    @property
    def mb(self) -> float:
        return self.disk_bytes / MB

    def largest(self, count: int = 3) -> str:
        biggest = sorted(self.distributions.items(), key=lambda item: -item[1])[:count]
        return ", ".join(f"{name} {size / MB:.0f}" for name, size in biggest)


def uv_binary() -> str:
    """uv beside this interpreter (Meltano 4.4 depends on it), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise SystemExit("uv not found: run `make bootstrap` (meltano installs it) or "
                         "pip install uv")
    return found


def disk_usage(root: Path) -> int:
    """Bytes on disk under ``root``, as ``du -s`` counts them."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(root):
        for name in [".", *files]:
            stat = os.lstat(os.path.join(directory, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


def copy_sources(destination: Path, *directories: str) -> list[Path]:
    """Copies of the distribution directories, as a clone would hold them.

    setuptools builds in the source tree and reuses its ``build/`` directory, so a
    module deleted since the last build would still land in the wheel; a copy without
    build output is built like a fresh ``git+...`` checkout (and leaves the repo clean).
    """
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    copies = []
    for directory in directories:
        copy = destination / directory
        if not copy.exists():
            shutil.copytree(REPO / directory, copy, ignore=ignore)
        copies.append(copy)
    return copies


def measure(plugin: str, venv: Path, uv: str) -> VenvSize:
    """Build ``venv`` afresh for ``plugin`` and measure it.

    Raises:
        subprocess.CalledProcessError: uv failed (its output is on stderr).
    """
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    sources = [str(path) for path in copy_sources(venv.parent / "sources", "dativo",
                                                  PLUGINS[plugin])]
    subprocess.run([uv, "pip", "install", "--quiet", f"--python={venv / 'bin/python'}",
                    *sources], check=True)
    listed = subprocess.run([str(venv / "bin/python"), "-I", "-c", _DIST_SIZES], check=True,
                            capture_output=True, text=True).stdout
    return VenvSize(plugin, disk_usage(venv), json.loads(listed))


def table(sizes: list[VenvSize]) -> str:
    """The README's Markdown table."""
    lines = ["| plugin | venv MB | goal MB | distributions | largest (MB) |",
             "|---|---:|---:|---:|---|"]
    for size in sizes:
        verdict = "" if size.mb <= size.goal_mb else " (over)"
        lines.append(f"| {size.plugin} | {size.mb:.0f}{verdict} | {size.goal_mb} | "
                     f"{len(size.distributions)} | {size.largest()} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plugins", nargs="*", metavar="PLUGIN",
                        help=f"plugins to measure (default: all of {', '.join(PLUGINS)})")
    parser.add_argument("--keep", type=Path,
                        help="build the venvs under this directory and keep them")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.plugins) - set(PLUGINS))
    if unknown:
        parser.error(f"unknown plugin {unknown[0]}; one of {', '.join(PLUGINS)}")
    uv = uv_binary()
    with tempfile.TemporaryDirectory(prefix="dativo-venv-sizes-") as scratch:
        root = args.keep or Path(scratch)
        shutil.rmtree(root / "sources", ignore_errors=True)  # copied afresh per run
        sizes = []
        for plugin in args.plugins or list(PLUGINS):
            venv = root / plugin
            shutil.rmtree(venv, ignore_errors=True)
            sizes.append(measure(plugin, venv, uv))
            print(f"{plugin}: {sizes[-1].mb:.0f} MB", file=sys.stderr, flush=True)
    print(f"Python {sys.version_info.major}.{sys.version_info.minor}, "
          f"{sys.platform}; `uv venv` + `uv pip install ./dativo ./<plugin dir>`\n")
    print(table(sizes))
    return 0  # a missed goal is marked "(over)" in the table, as bench/run.py prints them


if __name__ == "__main__":
    sys.exit(main())
