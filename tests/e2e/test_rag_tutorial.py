"""docs/rag-pipeline.md runs as written: its ``bash`` blocks are executed in order in a
copy of the project, each output the doc shows (the ``text`` block right after a
``bash`` block) must be exactly what the commands print, and the three answers are the
right ones."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pyiceberg.catalog import load_catalog

from dativo.iceberg.catalog import default_catalog_properties
from tests.conftest import BIN, REPO, read_table

DOC = REPO / "docs" / "rag-pipeline.md"
FENCE = re.compile(r"^(`{3,})(\w*)\n(.*?)^\1$", re.MULTILINE | re.DOTALL)
MARK = "@@ tutorial step "
ANSWERS = ["A: Summit 4S Tent  (record 2: Summit 4S Tent)",
           "A: 10  (record 4: Ember Titanium Stove)",
           "A: 49.50  (record 8: Lumen 400 Headlamp)"]


def tutorial_steps(text: str) -> list[tuple[str, str | None]]:
    """Each ``bash`` block, with the ``text`` block that follows it (its shown output)."""
    blocks = [(m.group(2), m.group(3)) for m in FENCE.finditer(text)]
    steps = []
    for i, (language, body) in enumerate(blocks):
        if language == "bash":
            after = blocks[i + 1] if i + 1 < len(blocks) else None
            steps.append((body, after[1] if after and after[0] == "text" else None))
    return steps


def test_tutorial_steps_are_found() -> None:
    steps = tutorial_steps(DOC.read_text(encoding="utf-8"))
    commands = [body for body, _ in steps]
    assert any("meltano run tap-dativo-csv target-dativo-markdown-kv" in c for c in commands)
    assert any("python samples/rag/ask.py" in c for c in commands)
    assert [expected is not None for _, expected in steps] == [False, True, True]


def test_the_rag_tutorial_runs_and_answers_its_three_questions(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "meltano.yml", project)
    for folder in ("plugins", "odcs_contracts", "samples"):
        shutil.copytree(REPO / folder, project / folder)
    steps = tutorial_steps(DOC.read_text(encoding="utf-8"))
    script = "".join(f"echo '{MARK}{i}'\n{body}" for i, (body, _) in enumerate(steps))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env.update({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "LC_ALL": "C",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true", "PYTHONWARNINGS": "ignore"})
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=project, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]

    outputs = re.split(rf"^{re.escape(MARK)}\d+\n", result.stdout, flags=re.MULTILINE)[1:]
    assert len(outputs) == len(steps)
    for (body, expected), printed in zip(steps, outputs, strict=True):
        if expected is not None:
            assert printed == expected, f"output of\n{body}"
    answers = [line for line in outputs[-1].splitlines() if line.startswith("A: ")]
    assert answers == ANSWERS

    props = default_catalog_properties(project / "output" / "warehouse")
    catalog = load_catalog(props.pop("name"), **props)
    manifest = read_table(catalog, ("demo", "rag", "products__md_files"))
    assert sorted(manifest.column("doc_id").to_pylist(), key=int) == [
        str(i) for i in range(1, 11)]
    dead = read_table(catalog, ("demo", "rag", "products__dead_letter")).to_pylist()
    assert [(d["line_number"], sorted(r["rule"] for r in d["reasons"])) for d in dead] == [
        (12, ["minimum", "minimum"])]
