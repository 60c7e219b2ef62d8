"""`meltano run tap-dativo-markdown-kv target-dativo-iceberg` from a copy of the repo's
project: the extractor definition in plugins/ works, and Meltano's state makes the
second run read nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog

from dativo.iceberg.catalog import default_catalog_properties
from dativo.markdown_kv import render_records
from tests.conftest import BIN, REPO, read_table

STATE_ID = "dev:tap-dativo-markdown-kv-to-target-dativo-iceberg"
FAQ = ("demo", "default", "faq")
ROWS = [
    {"id": 1, "question": "How do I reset my password?", "answer": "Use Settings: Reset.\n"
     "A mail follows within 5 minutes."},
    {"id": 2, "question": "Is there an API?", "answer": "Yes: see ```/docs/api```."},
]


def meltano(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DISABLE_TRACKING": "true",
        "PYTHONWARNINGS": "ignore",
        "TAP_DATIVO_MARKDOWN_KV_FILES": json.dumps(
            [{"entity": "faq", "path": "rag/*.md", "keys": ["id"]}]),
    })
    result = subprocess.run([str(BIN / "meltano"), *args], cwd=project, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"meltano {' '.join(args)}:\n{result.stderr}"
    return result


def warehouse(project: Path) -> Catalog:
    props = default_catalog_properties(project / "output" / "warehouse")
    return load_catalog(props.pop("name"), **props)


def test_meltano_run_loads_markdown_kv_once_and_keeps_state(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "meltano.yml", project)
    for folder in ("plugins", "odcs_contracts"):  # the loader config names contracts_dir
        shutil.copytree(REPO / folder, project / folder)
    (project / "rag").mkdir()
    (project / "rag" / "faq.md").write_text(
        render_records([(str(r["id"]), r) for r in ROWS], title="faq"), encoding="utf-8")

    meltano(project, "--environment", "dev", "run", "tap-dativo-markdown-kv",
            "target-dativo-iceberg")
    catalog = warehouse(project)
    landed = sorted(read_table(catalog, FAQ).to_pylist(), key=lambda r: r["id"])
    assert [{k: r[k] for k in ("id", "question", "answer")} for r in landed] == ROWS
    assert [(r["_sdc_doc_id"], r["_sdc_source_file"]) for r in landed] == [
        ("1", "rag/faq.md"), ("2", "rag/faq.md")]
    snapshot = catalog.load_table(FAQ).current_snapshot().snapshot_id

    state = json.loads(meltano(project, "state", "get", STATE_ID).stdout)
    partitions = state["singer_state"]["bookmarks"]["faq"]["partitions"]
    assert [p["context"] for p in partitions] == [{"_sdc_source_file": "rag/faq.md"}]

    meltano(project, "--environment", "dev", "run", "tap-dativo-markdown-kv",
            "target-dativo-iceberg")
    catalog = warehouse(project)
    assert read_table(catalog, FAQ).num_rows == 2
    assert catalog.load_table(FAQ).current_snapshot().snapshot_id == snapshot
