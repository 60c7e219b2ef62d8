"""Write the lockfiles from which the repo's own meltano.yml takes its plugin definitions.

``plugins/<type>/<name>.yml`` is the one hand-edited definition of each plugin, in the
single-plugin format of Meltano Hub that ``meltano add <type> <name> --from-ref <file>``
reads. meltano.yml names each plugin with its variant only, and Meltano reads such a
plugin's definition from its lockfile ``plugins/<type>/<name>--<variant>.lock``. This
script writes those lockfiles with Meltano's own code (``StandalonePlugin``, as
``meltano lock`` does), from the .yml files, with one change: no ``pip_url``. In this
checkout ``make bootstrap`` has installed every distribution editable into .venv, and a
plugin without ``pip_url`` runs its executable from PATH; with one, Meltano would build
a virtualenv per plugin in every copy of the project.

Usage: ``python plugins/lock.py`` writes them; ``--check`` lists stale or missing
lockfiles and exits 1 (tests/unit/test_adoption_plugins.py runs it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from meltano.core.plugin.base import PluginDefinition, PluginType, StandalonePlugin
from meltano.core.yaml import load as load_yaml

PLUGINS = Path(__file__).resolve().parent
PLUGIN_TYPES = ("extractors", "loaders", "utilities")


def definition_files() -> list[Path]:
    """Every hand-edited definition, ``plugins/<type>/<name>.yml``."""
    return sorted(path for kind in PLUGIN_TYPES for path in (PLUGINS / kind).glob("*.yml"))


def read_definition(path: Path) -> dict[str, Any]:
    """A definition file as ``meltano add --from-ref`` reads it (Meltano's YAML loader)."""
    return dict(load_yaml(path))


def locked(path: Path) -> tuple[Path, str]:
    """The lockfile of one definition file, and its text.

    Raises:
        TypeError: The file is not a valid single-plugin definition (Meltano's error).
    """
    definition = PluginDefinition.parse(
        {"plugin_type": PluginType(path.parent.name), **read_definition(path)})
    variant = definition.find_variant(definition.variants[0].name)
    content = StandalonePlugin.from_variant(variant, definition).canonical()
    content.pop("pip_url", None)
    lock = path.with_name(f"{definition.name}--{variant.name}.lock")
    return lock, json.dumps(content, indent=2) + "\n"


def stale() -> list[str]:
    """What ``--check`` reports: lockfiles that differ from their .yml, or have none."""
    problems = []
    expected = {}
    for path in definition_files():
        lock, text = locked(path)
        expected[lock] = text
        if not lock.is_file() or lock.read_text(encoding="utf-8") != text:
            problems.append(f"{lock.relative_to(PLUGINS.parent)} is not {path.name} locked")
    for kind in PLUGIN_TYPES:
        for lock in (PLUGINS / kind).glob("*.lock"):
            if lock not in expected:
                problems.append(f"{lock.relative_to(PLUGINS.parent)} has no .yml definition")
    return problems


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        problems = stale()
        for problem in problems:
            print(f"{problem}; run `make plugin-locks`", file=sys.stderr)
        return 1 if problems else 0
    for path in definition_files():
        lock, text = locked(path)
        lock.write_text(text, encoding="utf-8")
        print(f"wrote {lock.relative_to(PLUGINS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
