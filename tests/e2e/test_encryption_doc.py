"""docs/encryption.md runs as written: its ``bash`` blocks (the walkthrough, the Python
helper, the DuckDB function) are executed in order in an empty directory with the
project's commands on PATH, and each output the doc shows (the ``text`` block right after
a ``bash`` block) must be exactly what the commands print."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.conftest import BIN, REPO

DOC = REPO / "docs" / "encryption.md"
FENCE = re.compile(r"^(`{3,})(\w*)\n(.*?)^\1$", re.MULTILINE | re.DOTALL)
MARK = "@@ encryption doc step "


def steps(text: str) -> list[tuple[str, str | None]]:
    """Each ``bash`` block, with the ``text`` block that follows it (its shown output)."""
    blocks = [(m.group(2), m.group(3)) for m in FENCE.finditer(text)]
    found = []
    for i, (language, body) in enumerate(blocks):
        if language == "bash":
            after = blocks[i + 1] if i + 1 < len(blocks) else None
            found.append((body, after[1] if after and after[0] == "text" else None))
    return found


def test_the_doc_has_its_steps() -> None:
    found = steps(DOC.read_text(encoding="utf-8"))
    commands = "".join(body for body, _ in found)
    for command in ("dativo keys new >", "dativo keys new --id k2", "dativo keys rewrap",
                    "dativo decrypt", "decrypt_column(", "create_function("):
        assert command in commands
    assert sum(expected is not None for _, expected in found) == 6


def test_the_encryption_walkthrough_runs_and_prints_what_it_shows(tmp_path: Path) -> None:
    found = steps(DOC.read_text(encoding="utf-8"))
    script = "".join(f"echo '{MARK}{i}'\n{body}" for i, (body, _) in enumerate(found))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATIVO_", "TARGET_"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "LC_ALL": "C",
                "PYTHONWARNINGS": "ignore"})
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]

    outputs = re.split(rf"^{re.escape(MARK)}\d+\n", result.stdout, flags=re.MULTILINE)[1:]
    assert len(outputs) == len(found)
    for (body, expected), printed in zip(found, outputs, strict=True):
        if expected is not None:
            assert printed == expected, f"output of\n{body}"
    rewrap = outputs[next(i for i, (body, _) in enumerate(found)
                          if body.startswith("dativo keys rewrap --config"))]
    assert re.fullmatch(
        r"demo\.hr\.employees: rewrapped 5 value\(s\) in 1 of 2 data file\(s\), written as 1 "
        r"\(columns email_token, salary\); key ids before: k1 \(5 value\(s\)\), k2 \(3 "
        r"value\(s\)\); after: k2 \(8 value\(s\)\); snapshot \d+\n"
        r"demo\.hr\.employees__dead_letter: rewrapped 2 value\(s\) in 1 of 1 data file\(s\), "
        r"written as 1 \(columns record_json\); key ids before: k1 \(2 value\(s\)\); after: "
        r"k2 \(2 value\(s\)\); snapshot \d+\n", rewrap)

    # No plaintext of an encrypted column in any file the walkthrough's loads wrote.
    warehouse = tmp_path / "output" / "encryption-demo" / "warehouse"
    files = [p for p in warehouse.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        assert b"@example.com" not in path.read_bytes(), path
