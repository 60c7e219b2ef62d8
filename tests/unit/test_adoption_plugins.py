"""The plugin definitions in plugins/<type>/<name>.yml against the plugins themselves.

Each definition is what `meltano add <type> <name> --from-ref <file>` reads, so what it
says must be what the plugin does: the capabilities and settings of its ``--about``,
each setting described; an installable ``pip_url`` naming the distributions that hold
its executable. The repo's meltano.yml reads the same definitions from lockfiles
(see meltano.yml), which must be the .yml files locked.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml
from meltano.core.plugin.base import PluginDefinition, PluginType

from tests.conftest import BIN, REPO

PLUGINS = REPO / "plugins"
GIT = "git+https://github.com/dativo/dativo-ingest.git"
DOCS = "https://github.com/dativo/dativo-ingest"
DEFINITIONS = sorted(PLUGINS.glob("*/*.yml"))
SINGER = [p for p in DEFINITIONS if p.parent.name in ("extractors", "loaders")]
KEYS = {"name", "namespace", "variant", "label", "description", "repo", "docs", "pip_url",
        "executable", "capabilities", "settings_group_validation", "settings", "commands"}


def definition(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def about(executable: str) -> dict[str, Any]:
    run = subprocess.run([str(BIN / executable), "--about", "--format=json"],
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(run.stdout)


def about_settings(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict, bool]]:
    """(Meltano name, schema, is_leaf) of every property, nested objects flattened.

    Meltano names a nested setting with dots (``metrics.port``) and passes it nested.
    An object with declared properties yields them, and itself as a non-leaf (its
    definition may declare it too, as ``catalog`` does for pyiceberg's other
    properties); ``__else__`` is a stream-maps directive, not a property.
    """
    for key, prop in schema.get("properties", {}).items():
        if key.startswith("__"):
            continue
        name = f"{prefix}{key}"
        children = {k: v for k, v in (prop.get("properties") or {}).items()
                    if not k.startswith("__")}
        if children:
            yield name, prop, False
            yield from about_settings({"properties": children}, f"{name}.")
        else:
            yield name, prop, True


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_every_plugin_has_a_definition_file() -> None:
    assert {f"{p.parent.name}/{p.stem}" for p in DEFINITIONS} == {
        "extractors/tap-dativo-csv", "extractors/tap-dativo-postgres",
        "extractors/tap-dativo-stripe", "extractors/tap-dativo-hubspot",
        "extractors/tap-dativo-markdown-kv", "extractors/tap-dativo-mysql",
        "extractors/tap-dativo-google-sheets", "extractors/tap-dativo-google-drive",
        "extractors/tap-dativo-salesforce",
        "extractors/tap-dativo-snowflake",
        "loaders/target-dativo-iceberg",
        "utilities/dativo"}


@pytest.mark.parametrize("path", DEFINITIONS, ids=ids(DEFINITIONS))
def test_definition_is_a_hub_single_plugin_definition(path: Path) -> None:
    data = definition(path)
    assert set(data) <= KEYS, f"not Hub keys: {set(data) - KEYS}"
    assert data["name"] == path.stem
    assert data["namespace"] == path.stem.replace("-", "_")
    assert data["variant"] == "dativo"
    assert data["label"] and data["description"]
    assert data["docs"].startswith(DOCS)
    assert data["executable"] == path.stem
    # Meltano's own parser, as `meltano add --from-ref` and the lockfiles use it.
    parsed = PluginDefinition.parse({"plugin_type": PluginType(path.parent.name), **data})
    assert parsed.name == data["name"]
    assert [v.name for v in parsed.variants] == ["dativo"]


@pytest.mark.parametrize("path", DEFINITIONS, ids=ids(DEFINITIONS))
def test_pip_url_names_core_and_the_distribution_with_the_executable(path: Path) -> None:
    data = definition(path)
    requirements = shlex.split(data["pip_url"])  # as Meltano splits it
    if path.parent.name == "utilities":
        assert requirements == [f"dativo-core[iceberg] @ {GIT}#subdirectory=dativo"]
        subdirectories = ["dativo"]
    else:
        assert requirements[0] == f"{GIT}#subdirectory=dativo"
        assert len(requirements) == 2
        assert requirements[1].startswith(f"{GIT}#subdirectory=")
        subdirectories = ["dativo", requirements[1].split("#subdirectory=")[1]]
    projects = [tomllib.loads((REPO / sub / "pyproject.toml").read_text())["project"]
                for sub in subdirectories]
    assert projects[0]["name"] == "dativo-core"
    assert data["executable"] in projects[-1]["scripts"]
    if path.parent.name != "utilities":
        assert projects[1]["name"] == data["name"]
    else:
        assert "iceberg" in projects[0]["optional-dependencies"]


@pytest.mark.parametrize("path", SINGER, ids=ids(SINGER))
def test_capabilities_match_about(path: Path) -> None:
    data = definition(path)
    assert sorted(data["capabilities"]) == sorted(about(data["executable"])["capabilities"])


@pytest.mark.parametrize("path", SINGER, ids=ids(SINGER))
def test_settings_match_about(path: Path) -> None:
    """Every setting the plugin declares is in the definition with a description, and
    nothing else is; descriptions (whitespace aside), defaults and secrecy agree."""
    data = definition(path)
    declared = {s["name"]: s for s in data["settings"]}
    found = list(about_settings(about(data["executable"])["settings"]))
    leaves = {name: prop for name, prop, leaf in found if leaf}
    objects = {name: prop for name, prop, leaf in found if not leaf}
    assert sorted(set(leaves) - set(declared)) == [], "in --about, not in the definition"
    assert sorted(set(declared) - set(leaves) - set(objects)) == [], (
        "in the definition, not in --about")
    for name, setting in declared.items():
        assert setting.get("description"), f"{name}: no description"
        prop = leaves.get(name) or objects[name]
        # One text in both places: Meltano shows the definition's, --about the plugin's.
        assert " ".join(setting["description"].split()) == " ".join(
            (prop.get("description") or "").split()), (
            f"{data['name']} setting {name}: the definition's description is not the "
            f"--about one: {prop.get('description')!r}")
        assert bool(setting.get("sensitive")) == bool(prop.get("secret")), name
        if prop.get("enum"):
            assert setting["kind"] == "options", name
            assert [o["value"] for o in setting["options"]] == prop["enum"], name
        if "." in name:
            # Meltano passes a value of a nested setting always: markdown_kv.storage
            # would then make every run a Markdown-KV one.
            assert "value" not in setting, f"{name}: nested default"
        else:
            assert setting.get("value") == prop.get("default"), f"{name}: default"


def test_the_settings_the_issue_names_are_declared() -> None:
    for path in SINGER:
        names = {s["name"] for s in definition(path)["settings"]}
        assert {"log_format", "metrics.pushgateway_url", "metrics.textfile_dir",
                "metrics.port", "tenant_id"} <= names, path.stem
    target = {s["name"] for s in definition(PLUGINS / "loaders/target-dativo-iceberg.yml")
              ["settings"]}
    assert {"audit_log_path", "catalog", "catalog.uri", "catalog.s3.endpoint"} <= target


def test_lockfiles_are_the_definitions_locked() -> None:
    run = subprocess.run([sys.executable, str(PLUGINS / "lock.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for path in DEFINITIONS:
        lock = json.loads(path.with_name(f"{path.stem}--dativo.lock").read_text())
        data = definition(path)
        del data["pip_url"]
        assert lock == {"plugin_type": path.parent.name, **data}


def test_a_stale_lockfile_is_reported(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "lock.py").write_bytes((PLUGINS / "lock.py").read_bytes())
    (plugins / "loaders").mkdir()
    source = definition(PLUGINS / "loaders/target-dativo-iceberg.yml")
    (plugins / "loaders/target-dativo-iceberg.yml").write_text(yaml.safe_dump(source))
    check = [sys.executable, str(plugins / "lock.py"), "--check"]
    missing = subprocess.run(check, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1
    assert ("plugins/loaders/target-dativo-iceberg--dativo.lock is not "
            "target-dativo-iceberg.yml locked; run `make plugin-locks`") in missing.stderr
    subprocess.run([sys.executable, str(plugins / "lock.py")], check=True,
                   capture_output=True, timeout=120)
    assert subprocess.run(check, capture_output=True, timeout=120).returncode == 0
    source["settings"][0]["description"] = "edited"
    (plugins / "loaders/target-dativo-iceberg.yml").write_text(yaml.safe_dump(source))
    assert subprocess.run(check, capture_output=True, timeout=120).returncode == 1


def test_meltano_yml_names_the_plugins_and_defines_none() -> None:
    """Nothing is defined twice: meltano.yml has each plugin by name and variant only."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    assert "include_paths" not in project
    listed = {}
    for kind, plugins in project["plugins"].items():
        for plugin in plugins:
            if "inherit_from" in plugin:
                continue
            assert set(plugin) <= {"name", "variant", "config", "select", "metadata"}, plugin
            listed[f"{kind}/{plugin['name']}"] = plugin["variant"]
    assert listed == {f"{p.parent.name}/{p.stem}": "dativo" for p in DEFINITIONS}
