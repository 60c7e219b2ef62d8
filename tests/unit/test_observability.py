"""The Grafana dashboard and the alert rules are valid PromQL over metrics we emit."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from dativo.metrics import METRIC_NAMES
from tests.conftest import REPO

DASHBOARD = REPO / "observability" / "grafana" / "dativo.json"
ALERTS = REPO / "observability" / "prometheus" / "alerts.yml"
_METRIC = re.compile(r"\b(dativo_[a-z0-9_]+)\b")


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def test_every_expression_uses_only_metric_names_the_code_emits() -> None:
    exprs = dashboard_exprs() + alert_exprs()
    used = {name for e in exprs for name in _METRIC.findall(e)}
    assert len(exprs) >= 15 and used, "no expressions found"
    assert used <= METRIC_NAMES, f"unknown metrics: {sorted(used - METRIC_NAMES)}"


def test_the_alert_rules_pass_promtool() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query, as a recording rule with Grafana's variables
    replaced by match-all regexes."""
    exprs = [e.replace("$tenant", ".*").replace("$stream", ".*") for e in dashboard_exprs()]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{n}", "expr": e} for n, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
