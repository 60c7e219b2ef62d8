"""The layering rules, read from the source (docs/architecture.md, "what may import what"):

(a) only ``dativo/iceberg/`` imports pyiceberg, apart from type-only imports under
    ``if TYPE_CHECKING:``;
(b) no plugin package (``tap_dativo_*``, ``target_dativo_*``) imports another plugin;
(c) nothing under ``dativo/`` imports a plugin;
(d) only ``orchestration/dativo_dagster`` imports dagster (or a ``dagster_*`` library).

Every import counts, also one inside a function (the lazy imports of the CLI and the
loader), for (b) and (c) also one under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("dativo", "taps", "targets", "orchestration")
PLUGIN = re.compile(r"(tap|target)_dativo_[a-z0-9_]+")
ICEBERG_LAYER = "dativo.iceberg"
DAGSTER_PACKAGE = "dativo_dagster"


@dataclass(frozen=True)
class Import:
    """One imported module, where, and whether only for type checkers."""

    module: str
    line: int
    type_only: bool


def imports(source: str, package: str = "") -> Iterator[Import]:
    """Every module ``source`` imports (relative ones resolved against ``package``)."""
    tree = ast.parse(source)
    type_only_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                type_only_lines.update(
                    n.lineno for n in ast.walk(child) if hasattr(n, "lineno"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, node.lineno in type_only_lines)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[:len(parts) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            yield Import(module, node.lineno, node.lineno in type_only_lines)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def violations(path: str, source: str) -> list[str]:
    """The rules ``source`` (the module at ``path``, relative to the repo) breaks."""
    parts = Path(path).with_suffix("").parts
    if parts[0] in ("taps", "targets", "orchestration"):
        parts = parts[1:]
    package = ".".join(parts[:-1])  # a module's package; an __init__'s is itself
    own = parts[0]
    found = []
    for imported in imports(source, package or own):
        top = imported.module.split(".")[0]
        where = f"{path}:{imported.line} imports {imported.module}"
        if top == "pyiceberg" and not imported.type_only and not (
                package == ICEBERG_LAYER or package.startswith(ICEBERG_LAYER + ".")):
            found.append(f"{where}: pyiceberg is imported only under dativo/iceberg/ "
                         "(or under `if TYPE_CHECKING:`)")
        if PLUGIN.fullmatch(top) and top != own:
            rule = ("dativo/ imports no plugin" if own == "dativo"
                    else "no plugin imports another")
            found.append(f"{where}: {rule}")
        if (top == "dagster" or top.startswith("dagster_")) and own != DAGSTER_PACKAGE:
            found.append(f"{where}: only orchestration/dativo_dagster imports dagster")
    return found


def source_files() -> list[Path]:
    return sorted(p for top in SOURCES for p in (ROOT / top).rglob("*.py")
                  if not any(part.startswith(".") or part == "build" or part.endswith(
                      ".egg-info") for part in p.relative_to(ROOT).parts))


def test_the_tree_keeps_the_import_rules() -> None:
    files = source_files()
    assert len(files) > 50, "the walk found too few modules"
    broken = [v for p in files
              for v in violations(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))]
    assert broken == []


@pytest.mark.parametrize(("path", "source"), [
    ("targets/target_dativo_iceberg/loader.py", "from pyiceberg.table import Table\n"),
    ("dativo/cli.py", "def f():\n    from pyiceberg.exceptions import NoSuchTableError\n"),
    ("dativo/contracts/model.py", "import pyiceberg.types\n"),
    ("taps/tap_dativo_csv/tap.py", "from tap_dativo_postgres.types import x\n"),
    ("targets/target_dativo_iceberg/sinks.py",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tap_dativo_csv\n"),
    ("dativo/metrics.py", "from target_dativo_iceberg.settings import TargetSettings\n"),
    ("dativo/iceberg/writer.py", "from ..contracts import x\nimport target_dativo_iceberg\n"),
    ("dativo/cli.py", "def f():\n    import dagster\n"),
    ("targets/target_dativo_iceberg/target.py", "from dagster_webserver import x\n"),
    ("orchestration/dativo_dagster/assets.py", "from pyiceberg.table import Table\n"),
    ("orchestration/dativo_dagster/assets.py", "import tap_dativo_csv\n"),
])
def test_a_violation_is_found(path: str, source: str) -> None:
    assert len(violations(path, source)) == 1


@pytest.mark.parametrize(("path", "source"), [
    ("dativo/iceberg/writer.py", "from pyiceberg.catalog import Catalog\n"),
    ("dativo/iceberg/maintenance/compact.py", "import pyiceberg.table\n"),
    ("targets/target_dativo_iceberg/sinks.py",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pyiceberg import table\n"),
    ("dativo/cli.py", "import typing\nif typing.TYPE_CHECKING:\n    import pyiceberg\n"),
    ("targets/target_dativo_iceberg/target.py",
     "from dativo.iceberg.writer import IcebergWriter\nfrom . import loader\n"),
    ("taps/tap_dativo_csv/tap.py", "from tap_dativo_csv.streams import CsvStream\n"),
    ("orchestration/dativo_dagster/assets.py",
     "import dagster as dg\nfrom dativo.iceberg.catalog import x\n"),
])
def test_what_the_rules_allow(path: str, source: str) -> None:
    assert violations(path, source) == []
