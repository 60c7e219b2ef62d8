"""The plugins in a Meltano project of a user's own, as the README tells them to add them.

A fresh project in a temp directory outside the repo gets every plugin through
`meltano add <type> <name> --from-ref plugins/<type>/<name>.yml`, installs them into
virtualenvs of their own (Meltano's uv backend) from the local checkout (and
tap-dativo-csv from a git clone, the `git+...#subdirectory=` form), and runs
tap-dativo-csv into target-dativo-iceberg. Also: Meltano passes a setting through its
environment variable in the repo's own project.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pyiceberg.catalog import load_catalog

from dativo.iceberg.catalog import default_catalog_properties
from tests.conftest import BIN, REPO, read_table
from tests.e2e.test_meltano_run import VALID_CUSTOMER_IDS, copy_project, meltano

GIT_URL = re.compile(r"git\+https://github\.com/dativo/dativo-ingest\.git#subdirectory=([\w/]+)")
DEFINITIONS = sorted((REPO / "plugins").glob("*/*.yml"))
HEAVY = ("pyarrow", "pyiceberg", "duckdb", "stripe", "adbc")


def run_meltano(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Meltano as a user runs it: no plugin executable of the repo on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_",
                                                                     "TARGET_"))}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != BIN]
    env.update({"PATH": os.pathsep.join(path), "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true", "PYTHONWARNINGS": "ignore"})
    result = subprocess.run([str(BIN / "meltano"), *args], cwd=project, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"meltano {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result


def with_pip_url(definition: Path, folder: Path, source: str) -> Path:
    """The definition with its GitHub pip_url pointed at ``source``: ``file`` (the
    checkout's distribution directories) or a ``git+file://`` URL of a clone."""
    data = yaml.safe_load(definition.read_text())
    if source == "file":
        data["pip_url"] = GIT_URL.sub(lambda m: (REPO / m[1]).as_uri(), data["pip_url"])
    else:
        data["pip_url"] = GIT_URL.sub(lambda m: f"{source}#subdirectory={m[1]}",
                                      data["pip_url"])
    assert "github.com" not in data["pip_url"]
    copy = folder / definition.parent.name / definition.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def listed_settings(output: str) -> dict[str, str]:
    """`meltano config list --all`: each setting's name and the description line after it."""
    lines = output.splitlines()
    found = {}
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        match = re.match(r"^(\S+)(?: \([^)]*\))? \[env: ", line)  # "(required by group 1)"
        if match:
            found[match[1]] = following.strip() if following.startswith("\t") else ""
    return found


def distributions(venv: Path) -> set[str]:
    """Names of the distributions installed in a plugin's virtualenv."""
    site = next(venv.glob("lib/python*/site-packages"))
    return {p.name.split("-")[0].lower().replace("_", "-") for p in site.glob("*.dist-info")}


@pytest.mark.slow
def test_a_new_meltano_project_adds_installs_and_runs_the_plugins(tmp_path: Path) -> None:
    project = tmp_path / "my-project"
    project.mkdir()
    (project / "meltano.yml").write_text("project_id: adoption-test\n"
                                         "send_anonymous_usage_stats: false\n"
                                         "default_environment: dev\n"
                                         "environments:\n- name: dev\n")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    refs = tmp_path / "refs"
    for definition in DEFINITIONS:
        source = f"git+{clone.as_uri()}" if definition.stem == "tap-dativo-csv" else "file"
        ref = with_pip_url(definition, refs, source)
        # Meltano 4 takes the type as an option: `meltano add extractor tap-x` would add
        # a second plugin, a utility named after the definition.
        run_meltano(project, "add", "--plugin-type", definition.parent.name, definition.stem,
                    "--from-ref", str(ref), "--no-install")
    added = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]
    assert {kind: sorted(p["name"] for p in plugins) for kind, plugins in added.items()} == {
        kind: sorted(p.stem for p in DEFINITIONS if p.parent.name == kind)
        for kind in ("extractors", "loaders", "utilities")}
    run_meltano(project, "install")

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    catalog = {"name": "mine", "type": "sql", "uri": f"sqlite:///{warehouse / 'catalog.db'}",
               "warehouse": warehouse.as_uri()}
    files = [{"entity": "customers", "path": str(REPO / "samples/demo/customers.csv"),
              "keys": ["customer_id"]},
             {"entity": "orders", "path": str(REPO / "samples/demo/orders.csv"),
              "keys": ["order_id"]}]
    settings = [("tap-dativo-csv", "files", json.dumps(files)),
                ("tap-dativo-csv", "tenant_id", "demo"),
                ("tap-dativo-csv", "contracts_dir", str(REPO / "odcs_contracts")),
                ("target-dativo-iceberg", "tenant_id", "demo"),
                ("target-dativo-iceberg", "validation_mode", "warn"),
                ("target-dativo-iceberg", "contracts_dir", str(REPO / "odcs_contracts")),
                *(("target-dativo-iceberg", f"catalog.{k}", v) for k, v in catalog.items())]
    for plugin, name, value in settings:
        run_meltano(project, "config", "set", plugin, name, value)
    run_meltano(project, "run", "tap-dativo-csv", "target-dativo-iceberg")

    props = dict(catalog)
    landed = read_table(load_catalog(props.pop("name"), **props), ("demo", "crm", "customers"))
    with (REPO / "samples/demo/customers.csv").open(newline="") as source:
        expected = {int(r["customer_id"]): r for r in csv.DictReader(source)}
    rows = sorted(landed.to_pylist(), key=lambda r: r["customer_id"])
    assert [r["customer_id"] for r in rows] == VALID_CUSTOMER_IDS
    for row in rows:
        want = expected[row["customer_id"]]
        assert (row["email"], row["full_name"], row["country"], row["tier"]) == (
            want["email"], want["full_name"], want["country"], want["tier"])
        assert row["signup_date"] == dt.date.fromisoformat(want["signup_date"])
        assert row["lifetime_value"] == Decimal(want["lifetime_value"])

    for ref in sorted(refs.glob("*/*.yml")):  # the definitions as added
        declared = {s["name"]: s["description"]
                    for s in yaml.safe_load(ref.read_text()).get("settings", [])}
        listing = run_meltano(project, "config", "list", ref.stem, "--all").stdout
        assert "Custom, possibly unsupported" not in listing, ref.stem
        shown = listed_settings(listing)
        assert set(shown) == set(declared), ref.stem
        for name, description in declared.items():
            assert " ".join(description.split())[:60] in shown[name], (ref.stem, name)

    tap = distributions(project / ".meltano/extractors/tap-dativo-csv/venv")
    assert {"tap-dativo-csv", "dativo-core", "singer-sdk"} <= tap
    assert [d for d in sorted(tap) if d.startswith(HEAVY)] == []
    target = distributions(project / ".meltano/loaders/target-dativo-iceberg/venv")
    assert {"target-dativo-iceberg", "pyiceberg", "pyarrow", "duckdb"} <= target


def test_meltano_passes_the_audit_log_path_through_its_environment_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_project(tmp_path / "project")
    audit = tmp_path / "audit" / "commits.jsonl"
    audit.parent.mkdir()
    monkeypatch.setenv("TARGET_DATIVO_ICEBERG_AUDIT_LOG_PATH", str(audit))
    listing = meltano(project, "config", "list", "target-dativo-iceberg").stdout
    assert "audit_log_path [env: TARGET_DATIVO_ICEBERG_AUDIT_LOG_PATH]" in listing
    meltano(project, "run", "tap-dativo-csv", "target-dativo-iceberg")
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {tuple(line["table"].split(".")) for line in lines} >= {
        ("demo", "crm", "customers"), ("demo", "default", "orders")}


def test_the_repo_project_lists_no_custom_setting(tmp_path: Path) -> None:
    """The config in meltano.yml only uses declared settings, and every plugin resolves
    its definition from the lockfiles (an unresolved one would fail `config list`)."""
    project = copy_project(tmp_path / "project")
    names = [p["name"] for plugins in yaml.safe_load((REPO / "meltano.yml").read_text())
             ["plugins"].values() for p in plugins]
    for name in names:
        listing = meltano(project, "config", "list", name).stdout
        assert "Custom, possibly unsupported" not in listing, name
    assert not list(project.glob(".meltano/*/*/venv")), "no plugin venv in the repo project"


def readme_commands() -> str:
    """The shell block of the README's "Install the plugins in your own Meltano project"."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Install the plugins in your own Meltano project"):]
    return section[section.index("```bash\n") + 8:section.index("```\n", 8)]


@pytest.mark.slow
def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    """The README's block, run by bash with only `meltano` on PATH. git resolves the
    repository's GitHub URL (in the clone command and in every pip_url) to this
    checkout, so the test needs no network and installs the committed code."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "meltano").symlink_to(BIN / "meltano")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_",
                                                                     "TARGET_"))}
    env.update({
        "PATH": os.pathsep.join([str(tools), "/usr/local/bin", "/usr/bin", "/bin"]),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{REPO.as_uri()}.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://github.com/dativo/dativo-ingest.git",
        "UV_NO_GITHUB_FAST_PATH": "1",  # uv would ask api.github.com for the commit
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "MELTANO_DISABLE_TRACKING": "true",
        "PYTHONWARNINGS": "ignore"})
    script = "set -euo pipefail\n" + readme_commands()
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "== demo.crm.customers: 6 rows ==" in run.stdout  # dativo:table-show
    assert "audit_log_path [env: TARGET_DATIVO_ICEBERG_AUDIT_LOG_PATH]" in run.stdout
    assert "Custom, possibly unsupported" not in run.stdout
    project = tmp_path / "my-project"
    props = default_catalog_properties(project / "output" / "warehouse")
    customers = read_table(load_catalog(props.pop("name"), **props), ("demo", "crm", "customers"))
    assert sorted(customers.column("customer_id").to_pylist()) == VALID_CUSTOMER_IDS
