"""The bench's quality row (bench/quality_rules.py) on a small events file: the ten-rule
contract passes on the generated data, and the row's check names a rule that fails, so a
bench run whose rules did not run or did not pass cannot report a ratio."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import orjson

from bench.generate import generate
from bench.quality_rules import QUALITY_CONTRACT, RULES, quality_problem
from bench.run import target_config
from tests.conftest import BIN


def load(warehouse: Path, events: Path) -> None:
    """The pipe of the quality row: the bench's target config, ``events`` mapped to the
    ten-rule contract."""
    config = {**target_config(warehouse), "stream_contracts": {"events": QUALITY_CONTRACT}}
    (warehouse / "cfg.json").write_text(json.dumps(config), encoding="utf-8")
    with events.open("rb") as stdin:
        run = subprocess.run([str(BIN / "target-dativo-iceberg"), "--config",
                              str(warehouse / "cfg.json")], stdin=stdin, capture_output=True,
                             text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_the_ten_rules_pass_on_the_generated_events(tmp_path: Path) -> None:
    events = generate(tmp_path / "events.singer.jsonl", 2_000)
    load(tmp_path, events)
    assert quality_problem(tmp_path) is None
    assert RULES == 10


def test_a_failed_rule_fails_the_row_with_its_name(tmp_path: Path) -> None:
    events = generate(tmp_path / "events.singer.jsonl", 2_000)
    lines = events.read_bytes().splitlines()
    record = orjson.loads(lines[1])
    record["record"] = {**record["record"], "id": 2_001, "email": None, "amount": -1.0}
    events.write_bytes(b"\n".join([*lines, orjson.dumps(record)]) + b"\n")
    load(tmp_path, events)
    assert quality_problem(tmp_path) == ("quality rules failed on the generated data: "
                                         "email.nullValues, no_negative_amounts")


def test_no_quality_table_says_the_rules_did_not_run(tmp_path: Path) -> None:
    events = generate(tmp_path / "events.singer.jsonl", 10)
    config = target_config(tmp_path)  # events.odcs.yaml: no rules
    (tmp_path / "cfg.json").write_text(json.dumps(config), encoding="utf-8")
    with events.open("rb") as stdin:
        subprocess.run([str(BIN / "target-dativo-iceberg"), "--config",
                        str(tmp_path / "cfg.json")], stdin=stdin, check=True,
                       capture_output=True, timeout=300)
    problem = quality_problem(tmp_path)
    assert problem == ("no rule results in bench.perf.events__quality: the quality rules of "
                       "bench/perf/events_quality.odcs.yaml did not run (see the run's "
                       "stderr.log)")
