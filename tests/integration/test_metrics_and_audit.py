"""A real run's metrics reach a real Pushgateway (or a textfile) with the right values,
and the audit log holds one line per commit, without record values."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families
from pyiceberg.catalog import Catalog

from tests.conftest import run_target, singer_lines

SCHEMA = {"type": "SCHEMA", "stream": "users", "key_properties": ["id"],
          "schema": {"properties": {"id": {"type": "integer"},
                                    "email": {"type": ["string", "null"], "format": "email"}}}}
CANARY = "value-never-in-metrics@example.com"


def user(i: object, email: str | None = None) -> dict:
    return {"type": "RECORD", "stream": "users",
            "record": {"id": i, "email": email or f"u{i}@example.com"}}


STREAM = singer_lines([SCHEMA, *(user(i) for i in range(4)), user("five", CANARY),
                       {"type": "STATE", "value": {"n": 5}}])


def samples(text: str, tenant: str = "acme") -> dict[tuple[str, tuple], float]:
    """(series name, sorted labels without job/instance/tenant/plugin) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.get("tenant") != tenant or labels.get("plugin") != "target-dativo-iceberg":
                continue
            rest = tuple(sorted((k, v) for k, v in labels.items()
                                if k not in ("job", "instance", "tenant", "plugin")))
            out[(sample.name, rest)] = sample.value
    return out


def test_a_run_pushes_its_metrics_to_the_pushgateway(
    pushgateway: str, target_config: Callable[..., Path], tmp_path: Path,
    open_catalog: Callable[[], Catalog],
) -> None:
    audit = tmp_path / "audit" / "commits.jsonl"
    result = run_target(target_config(metrics={"pushgateway_url": pushgateway},
                                      audit_log_path=str(audit)), STREAM)
    assert result.returncode == 0, result.stderr.decode()
    text = urllib.request.urlopen(f"{pushgateway}/metrics", timeout=10).read().decode()
    got = samples(text)
    users = (("stream", "users"),)
    assert got[("dativo_records_received_total", users)] == 5
    assert got[("dativo_records_written_total", users)] == 4
    assert got[("dativo_records_rejected_total", (("reason", "id:type"), *users))] == 1
    assert got[("dativo_batches_total", users)] == 1
    assert got[("dativo_bytes_written_total", users)] > 0
    assert got[("dativo_iceberg_commits_total", (("table", "acme.default.users"),))] == 1
    assert got[("dativo_iceberg_commits_total",
                (("table", "acme.default.users__dead_letter"),))] == 1
    assert got[("dativo_batch_commit_latency_seconds_count", ())] == 1
    assert got[("dativo_last_success_timestamp_seconds", ())] > 1.7e9
    assert CANARY not in text
    summary = orjson.loads(result.stderr.split(b"Run summary: ", 1)[1].splitlines()[0])
    assert summary["state_emitted"] == {"n": 5}
    assert summary["streams"]["users"]["committed"] == 4
    assert summary["streams"]["users"]["rejected_by_rule"] == {"id:type": 1}

    lines = [orjson.loads(line) for line in audit.read_bytes().splitlines()]
    table = open_catalog().load_table(("acme", "default", "users"))
    data = next(x for x in lines if not x["dead_letter"])
    dead = next(x for x in lines if x["dead_letter"])
    assert len(lines) == 2
    assert (data["table"], data["rows"], data["operation"], data["snapshot_id"]) == (
        "acme.default.users", 4, "append", table.current_snapshot().snapshot_id)
    assert (dead["table"], dead["rows"]) == ("acme.default.users__dead_letter", 1)
    assert {x["plugin"] for x in lines} == {"target-dativo-iceberg"}
    assert {x["tenant"] for x in lines} == {"acme"} and len({x["run_id"] for x in lines}) == 1
    assert data["files"] == 1 and data["bytes"] > 0 and data["at"].endswith("+00:00")
    assert CANARY.encode() not in audit.read_bytes()


def test_without_a_gateway_metrics_go_to_a_node_exporter_textfile(
    target_config: Callable[..., Path], tmp_path: Path,
) -> None:
    result = run_target(target_config(metrics={"textfile_dir": str(tmp_path)}), STREAM)
    assert result.returncode == 0, result.stderr.decode()
    got = samples((tmp_path / "target-dativo-iceberg.prom").read_text())
    assert got[("dativo_records_written_total", (("stream", "users"),))] == 4


def test_a_bad_metrics_setting_names_the_key(target_config: Callable[..., Path]) -> None:
    result = run_target(target_config(metrics={"port": 70000}), STREAM)
    assert result.returncode == 2
    assert b"metrics.port: 70000 must be a TCP port number" in result.stderr
