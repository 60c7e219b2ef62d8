"""The distribution split (issue 13): every package ships in its wheel, each plugin
imports only what its source needs, and `make bootstrap` installs every distribution."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib
from packaging.requirements import Requirement

from dativo.batch_files import parse_batch_config
from dativo.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "dativo"
PLUGIN_DIRS = sorted([*REPO.glob("taps/*/"), *REPO.glob("targets/*/")])
ORCHESTRATION_DIRS = sorted(p.parent for p in REPO.glob("orchestration/*/pyproject.toml"))
DIST_DIRS = [CORE, *PLUGIN_DIRS, *ORCHESTRATION_DIRS]
# Directories a build or a run leaves inside a distribution directory.
NOT_SOURCE = {"build", "dist", "__pycache__"}
HEAVY = ("pyarrow", "pyiceberg", "duckdb", "stripe", "adbc_driver_manager",
         "adbc_driver_postgresql", "sqlalchemy", "psycopg2")


def pyproject(directory: Path) -> dict[str, Any]:
    return tomllib.loads((directory / "pyproject.toml").read_text())


def source_dirs(root: Path) -> list[Path]:
    """Directories under ``root`` holding Python files (what a wheel must carry)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if any(part in NOT_SOURCE or part.startswith(".") or part.endswith(".egg-info")
               for part in parts):
            continue
        found.append(path.parent)
    return sorted(set(found))


def test_every_code_directory_has_a_distribution() -> None:
    """A new tap or target directory without a pyproject.toml would not be installable."""
    code_dirs = [p for p in PLUGIN_DIRS if (p / "__init__.py").exists()]
    assert len(code_dirs) == 11  # with tap_dativo_salesforce and tap_dativo_snowflake
    assert [p for p in code_dirs if not (p / "pyproject.toml").exists()] == []


@pytest.mark.parametrize("directory", DIST_DIRS, ids=lambda p: p.name)
def test_every_package_directory_is_listed(directory: Path) -> None:
    """``packages`` is explicit (package-dir "."), so a subpackage left out of the list
    would silently be missing from the wheel."""
    setuptools = pyproject(directory)["tool"]["setuptools"]
    [(package, mapped)] = setuptools["package-dir"].items()
    assert mapped == "."
    assert package == directory.name
    expected = []
    for source in source_dirs(directory):
        assert (source / "__init__.py").exists(), f"{source} has modules but no __init__.py"
        expected.append(".".join((package, *source.relative_to(directory).parts)))
    assert sorted(setuptools["packages"]) == sorted(expected)


@pytest.mark.parametrize("directory", DIST_DIRS, ids=lambda p: p.name)
def test_console_scripts_point_into_their_own_distribution(directory: Path) -> None:
    project = pyproject(directory)["project"]
    packages = pyproject(directory)["tool"]["setuptools"]["packages"]
    assert project["version"] == "0.1.0"
    for script, target in project.get("scripts", {}).items():
        module, _, attribute = target.partition(":")
        assert module.rpartition(".")[0] in packages, script
        assert attribute


def requirements(directory: Path) -> list[Requirement]:
    return [Requirement(d) for d in pyproject(directory)["project"]["dependencies"]]


def test_each_plugin_depends_on_this_core_and_only_its_source_libraries() -> None:
    core_version = pyproject(CORE)["project"]["version"]
    assert not {r.name for r in requirements(CORE)} & {
        "pyarrow", "pyiceberg", "duckdb", "stripe", "adbc-driver-postgresql",
        "psycopg2-binary"}
    own = {"tap_dativo_csv": [], "tap_dativo_markdown_kv": [],
           "tap_dativo_hubspot": ["requests"], "tap_dativo_stripe": ["stripe"],
           "tap_dativo_google_sheets": ["google-auth", "requests"],
           "tap_dativo_google_drive": ["google-auth", "requests"],
           "tap_dativo_salesforce": ["requests", "cryptography"],
           "tap_dativo_snowflake": ["snowflake-connector-python"],
           "tap_dativo_postgres": ["sqlalchemy", "psycopg2-binary"],
           "tap_dativo_mysql": ["sqlalchemy", "pymysql", "mysql-replication"],
           "target_dativo_iceberg": []}
    for directory in PLUGIN_DIRS:
        [core] = [r for r in requirements(directory) if r.name == "dativo-core"]
        assert str(core.specifier) == f"=={core_version}"
        assert core.extras == ({"iceberg"} if directory.parent.name == "targets" else set())
        others = [r.name for r in requirements(directory) if r.name != "dativo-core"]
        assert others == own[directory.name], directory.name


def test_only_the_dagster_distribution_depends_on_dagster() -> None:
    """Dagster is the orchestrator's choice, not a plugin's: no tap, target or the core
    pulls it (or its web server) into a Meltano plugin venv."""
    [dagster_dir] = ORCHESTRATION_DIRS
    assert {r.name for r in requirements(dagster_dir)} == {
        "dativo-core", "dagster", "dagster-webserver"}
    for directory in [CORE, *PLUGIN_DIRS]:
        assert not {r.name for r in requirements(directory)} & {"dagster", "dagster-webserver"}


def test_the_workspace_installs_every_distribution_with_its_extras() -> None:
    root = pyproject(REPO)
    assert root["tool"]["setuptools"]["packages"] == []
    pins = {r.name: r for r in requirements(REPO)}
    assert set(pins) == {pyproject(d)["project"]["name"] for d in DIST_DIRS}
    for directory in DIST_DIRS:
        project = pyproject(directory)["project"]
        assert pins[project["name"]].extras == set(project.get("optional-dependencies", {}))


def test_bootstrap_installs_every_distribution_editable_in_one_call(tmp_path: Path) -> None:
    """The recipe `make bootstrap` would run on a fresh clone (``-n``: printed only)."""
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "bootstrap", f"STAMP={tmp_path}/stamp",
         f"VENV={tmp_path}/venv"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    [install] = [line for line in printed.splitlines() if " -e " in line]
    editable = sorted(part for part in install.split() if part.startswith("./"))
    assert editable == sorted(f"./{d.relative_to(REPO)}" for d in DIST_DIRS)
    assert "-e '.[dev]'" in install


def test_a_changed_pyproject_bootstraps_again(tmp_path: Path) -> None:
    """The stamp depends on every pyproject.toml: touching one re-runs the install."""
    stamp = tmp_path / "stamp"
    stamp.touch()
    for directory in [REPO, *DIST_DIRS]:
        printed = subprocess.run(
            ["make", "--no-print-directory", "-n", "bootstrap", f"STAMP={stamp}",
             f"VENV={tmp_path}/venv", "-W", str((directory / "pyproject.toml").relative_to(REPO))],
            cwd=REPO, capture_output=True, text=True, check=True).stdout
        assert "pip install" in printed, directory
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "bootstrap", f"STAMP={stamp}",
         f"VENV={tmp_path}/venv"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "pip install" not in printed


@pytest.mark.parametrize(("module", "allowed"), [
    ("tap_dativo_csv.tap", ()),
    ("tap_dativo_markdown_kv.tap", ()),
    ("tap_dativo_hubspot.tap", ()),
    ("tap_dativo_google_sheets.tap", ()),
    ("tap_dativo_google_drive.tap", ()),
    ("tap_dativo_salesforce.tap", ()),
    ("tap_dativo_stripe.tap", ("stripe",)),
    ("tap_dativo_postgres.tap", ("sqlalchemy", "psycopg2")),
    ("dativo.cli", ()),
])
def test_a_plugin_imports_only_its_source_libraries(module: str, allowed: tuple[str, ...]
                                                    ) -> None:
    """In a fresh interpreter, so nothing else has loaded them already."""
    code = (f"import json, sys, {module}; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert set(json.loads(loaded)) <= set(allowed)


def test_the_arrow_names_of_contracts_load_on_first_use() -> None:
    code = ("import sys, dativo.contracts as c; before = 'pyarrow' in sys.modules; "
            "from dativo.contracts import arrow_schema, compile_contract; "
            "print(before, callable(arrow_schema), 'pyarrow' in sys.modules)")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
    assert printed == ["False", "True", "True"]


def test_parquet_without_its_extra_names_the_pip_install() -> None:
    raw = {"encoding": {"format": "parquet"}}
    with pytest.raises(ConfigError) as error:
        parse_batch_config(raw, tap="tap-dativo-postgres",
                           parquet_needs=("pyarrow", "no_such_driver_module"))
    assert str(error.value) == (
        "batch_config.encoding.format: parquet needs no_such_driver_module, which is not "
        "installed; pip install 'tap-dativo-postgres[parquet]' (or use jsonl)")
    jsonl = parse_batch_config({"encoding": {"format": "jsonl"}}, tap="tap-dativo-postgres",
                               parquet_needs=("no_such_driver_module",))
    assert jsonl is not None and jsonl.encoding.format == "jsonl"
