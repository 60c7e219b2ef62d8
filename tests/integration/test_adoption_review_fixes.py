"""Fixes from the review of issue 13: tap-dativo-csv's fast path with '","' inside a
value, ``on_invalid_value: fail`` sending nothing of a bad file, what the rejected
stream may carry, which ``__rejected`` streams the target exempts from contracts, and
the target's final progress lines on a strict refusal. Real processes throughout."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from tests.conftest import emitted_states, read_table, run_target
from tests.integration.test_adoption_csv_tap import (
    CONTRACTS,
    demo_config,
    messages,
    records,
    run_tap,
)

QUOTES = 'id,note\n1,"he said ""hi"","\n2,ok\n3,"a\\"\n4,"\\"\n5,""","\n'
"""Values ending in '",', a backslash, and a lone quote: the first one's JSON text
holds '","' that separates nothing."""


def test_fast_path_keeps_values_holding_quote_comma_quote(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text(QUOTES)
    result = run_tap({"files": [{"entity": "q", "path": "q.csv"}]}, tmp_path)
    assert result.returncode == 0, result.stderr
    out = messages(result.stdout)  # every line parses
    assert [(r["id"], r["note"]) for r in records(out, "q")] == [
        ("1", 'he said "hi",'), ("2", "ok"), ("3", "a\\"), ("4", "\\"), ("5", '",')]


ROWS = ["customer_id,email,full_name,country,signup_date,lifetime_value,tier"] + [
    f"{i},p{i}@example.com,Person {i},GB,2024-01-{i:02},{i}00.00,gold" for i in range(1, 9)]


@pytest.mark.parametrize("split", [False, True])
def test_fail_sends_nothing_of_a_bad_file_and_the_rerun_loads_each_row_once(
        tmp_path: Path, target_config: Any, open_catalog: Any, split: bool) -> None:
    """``split``: rows 1-4 are in a valid file read first (a.csv), so nothing of the
    stream may be sent either: those rows would go out with no bookmark."""
    bad = [*ROWS]
    bad[5] = bad[5].replace("p5@example.com", "not-an-email")  # physical line 6
    csv = tmp_path / "customers.csv"
    csv.write_text("\n".join(bad) + "\n")
    if split:
        (tmp_path / "a.csv").write_text("\n".join(ROWS[:5]) + "\n")
        bad[1:5] = []
        csv.write_text("\n".join(bad) + "\n")  # line 2 is the bad one now
    tap_config = {"files": [{"entity": "customers", "path": "*.csv"}],
                  "tenant_id": "demo", "contracts_dir": str(CONTRACTS),
                  "on_invalid_value": "fail"}
    target = target_config(tenant_id="demo", contracts_dir=str(CONTRACTS))
    catalog: Catalog = open_catalog()

    first = run_tap(tap_config, tmp_path)
    assert first.returncode == 2
    assert (f"line {2 if split else 6}: stream 'customers': customers.csv, column email"
            in first.stderr)
    assert records(messages(first.stdout), "customers") == []
    loaded = run_target(target, first.stdout.encode(), cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert emitted_states(loaded) == []
    with contextlib.suppress(NoSuchTableError):  # no table, or an empty one
        assert read_table(catalog, ("demo", "crm", "customers")).num_rows == 0

    csv.write_text("\n".join(ROWS[:1] + ROWS[5:] if split else ROWS) + "\n")
    second = run_tap(tap_config, tmp_path)
    assert second.returncode == 0, second.stderr
    loaded = run_target(target, second.stdout.encode(), cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr.decode()
    state = tmp_path / "state.json"
    state.write_text(json.dumps(emitted_states(loaded)[-1]))
    third = run_tap(tap_config, tmp_path, "--state", str(state))  # nothing new
    assert third.returncode == 0, third.stderr
    assert records(messages(third.stdout), "customers") == []

    ids = read_table(catalog, ("demo", "crm", "customers")).column("customer_id")
    assert sorted(ids.to_pylist()) == list(range(1, 9))


def _deselect(catalog: dict[str, Any], stream: str, column: str) -> dict[str, Any]:
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == stream)
    for item in entry["metadata"]:
        if item["breadcrumb"] == []:
            item["metadata"]["selected"] = True
        if item["breadcrumb"] == ["properties", column]:
            item["metadata"]["selected"] = False
    return catalog


def test_rejected_rows_carry_no_deselected_or_mapped_away_value(tmp_path: Path) -> None:
    """Line 6's email and line 8's signup_date are invalid; their full_name must not
    reach the rejected stream once full_name is deselected or mapped away."""
    config = demo_config(tmp_path)
    names = ("Edsger Dijkstra", "Donald Knuth")
    discovered = run_tap(config, tmp_path, "--discover")
    assert discovered.returncode == 0, discovered.stderr
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(_deselect(json.loads(discovered.stdout), "customers",
                                            "full_name")))
    deselected = run_tap(config, tmp_path, "--catalog", str(catalog))
    mapped = run_tap({**config, "stream_maps": {
        "customers": {"__alias__": "clients", "full_name": "md5(full_name)"}}}, tmp_path)
    for result, stream, reason in [
            (deselected, "customers__rejected", "'not-an-email' is not a valid email"),
            (mapped, "clients__rejected", "the value contradicts the SCHEMA")]:
        assert result.returncode == 0, result.stderr
        rejected = [m for m in messages(result.stdout) if m.get("stream") == stream]
        assert [m["type"] for m in rejected] == ["SCHEMA", "RECORD", "RECORD"]
        rows = [m["record"] for m in rejected[1:]]
        assert [(r["_sdc_source_lineno"], r["fields"], r["raw_line"]) for r in rows] == [
            (6, ["email"], None), (8, ["signup_date"], None)]
        assert rows[0]["reason"].startswith("email: ") and reason in rows[0]["reason"]
        lines = [line for line in result.stdout.splitlines() if stream in line]
        assert not any(name in line for line in lines for name in names)
    assert not [m for m in messages(mapped.stdout) if m.get("stream") == "customers__rejected"]


def test_rejected_raw_line_kept_when_nothing_is_deselected_or_mapped(tmp_path: Path) -> None:
    result = run_tap(demo_config(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    rows = records(messages(result.stdout), "customers__rejected")
    assert "Edsger Dijkstra" in rows[0]["raw_line"]


def _rejecting_run(tmp_path: Path) -> list[dict[str, Any]]:
    """The tap's messages for a file whose lines 6 and 8 contradict the SCHEMA (every
    other row meets the contract): streams customers and customers__rejected."""
    rows = [*ROWS]
    rows[5] = rows[5].replace("p5@example.com", "not-an-email")
    rows[7] = rows[7].replace("2024-01-07", "2024-13-07")
    (tmp_path / "customers.csv").write_text("\n".join(rows) + "\n")
    result = run_tap({"files": [{"entity": "customers", "path": "customers.csv"}],
                      "tenant_id": "demo", "contracts_dir": str(CONTRACTS)}, tmp_path)
    assert result.returncode == 0, result.stderr
    return messages(result.stdout)


def _lines(out: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in out)


def test_only_the_taps_own_rejected_stream_is_exempt_from_contracts(
        tmp_path: Path, target_config: Any, open_catalog: Any) -> None:
    """strict + contracts_dir needs a contract for every stream; a ``__rejected``
    stream goes without one only if its SCHEMA is the tap's and its parent is in the
    run. Otherwise: exit 2 naming the stream, and nothing committed."""
    out = _rejecting_run(tmp_path)
    foreign = [{**m, "schema": {"type": "object", "properties": {
        **m["schema"]["properties"], "card_number": {"type": ["string", "null"]}}}}
        if m["type"] == "SCHEMA" and m["stream"] == "customers__rejected" else m
        for m in out]
    orphan = [m for m in out if m.get("stream") != "customers"]
    cfg = target_config(tenant_id="demo", contracts_dir=str(CONTRACTS),
                        validation_mode="strict", require_contract=True)
    catalog: Catalog = open_catalog()
    for case in (foreign, orphan):
        refused = run_target(cfg, _lines(case), cwd=tmp_path)
        stderr = refused.stderr.decode()
        assert refused.returncode == 2, stderr
        assert "stream 'customers__rejected': no ODCS contract" in stderr
        assert "holds the rows a tap rejected" not in stderr
        assert emitted_states(refused) == []
        for table in ("customers", "customers_rejected"):
            with contextlib.suppress(NoSuchTableError):
                assert read_table(catalog, ("demo", "crm", table)).num_rows == 0

    landed = run_target(cfg, _lines(out), cwd=tmp_path)
    assert landed.returncode == 0, landed.stderr.decode()
    assert b"holds the rows a tap rejected from stream 'customers'" in landed.stderr
    rejected = read_table(catalog, ("demo", "crm", "customers_rejected"))
    assert sorted(rejected.column("_sdc_source_lineno").to_pylist()) == [6, 8]


def test_strict_refusal_at_end_of_input_still_logs_final_progress_once_per_stream(
        tmp_path: Path, target_config: Any) -> None:
    """The batch is refused when the input ends (finish), not on a bad line."""
    out: list[dict[str, Any]] = []
    for stream, ids in (("good", [1, 2]), ("bad", [1, "x"])):
        out.append({"type": "SCHEMA", "stream": stream, "key_properties": ["id"],
                    "schema": {"properties": {"id": {"type": "integer"}}}})
        out += [{"type": "RECORD", "stream": stream, "record": {"id": i}} for i in ids]
    result = run_target(target_config(validation_mode="strict"), _lines(out), cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "stream 'bad': validation_mode=strict rejected 1 of 2 record(s)" in stderr
    for stream in ("good", "bad"):
        assert stderr.count(f"progress (final): stream={stream} ") == 1, stderr


def test_fail_checks_for_ragged_rows_before_sending_any(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("a,b\n1,x\n2,y\n3,z,extra\n4,w\n")
    result = run_tap({"files": [{"entity": "r", "path": "r.csv"}],
                      "on_invalid_value": "fail"}, tmp_path)
    assert result.returncode == 2
    assert "line 4: r.csv: expected 2 columns, got 3" in result.stderr
    assert records(messages(result.stdout), "r") == []
