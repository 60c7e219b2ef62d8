"""Anomaly detection without configuration (issue 16, point 4): the profile of a load,
computed by DuckDB over real Arrow data, and the robust bands over earlier loads."""

from __future__ import annotations

import datetime as dt
import math
import random
import statistics
from decimal import Decimal

import pyarrow as pa
import pytest

from dativo.errors import ConfigError
from dativo.quality.anomaly import (
    CHUNK_COLUMNS,
    anomaly_problems,
    blocks,
    flags,
    profile,
    profile_results,
)
from dativo.quality.results import CheckResult

DEFAULTS = {"k": 3.0, "window": 20, "min_loads": 5}
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def load(n: int, number: int, rng: random.Random, *, null_share: float = 0.01) -> pa.Table:
    """Load ``number`` of an incremental stream: ids and times carry on from the last
    load (one day per load), amounts and statuses are random, emails sometimes null."""
    first = number * 1000
    return pa.table({
        "id": pa.array(range(first, first + n), pa.int64()),
        "amount": pa.array([Decimal(rng.randint(100, 99_999)) / 100 for _ in range(n)],
                           pa.decimal128(10, 2)),
        "status": pa.array([rng.choice(["new", "paid", "sent"]) for _ in range(n)],
                           pa.string()),
        "email": pa.array([None if rng.random() < null_share else f"u{i}@x.io"
                           for i in range(n)], pa.string()),
        "created_at": pa.array([START + dt.timedelta(days=number, seconds=i)
                                for i in range(n)], pa.timestamp("us", "UTC")),
    })


def history_of(sizes: list[int], rng: random.Random) -> list[dict[str, float]]:
    return [profile(load(n, i, rng), 0) for i, n in enumerate(sizes)]


def by_rule(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.rule: r for r in results}


def flagged(results: list[CheckResult]) -> list[str]:
    return [r.rule for r in results if r.outcome == "flag"]


def test_acceptance_ten_loads_of_about_1000_rows_then_10_is_flagged_and_1050_is_not():
    rng = random.Random(16)
    sizes = [rng.randint(970, 1030) for _ in range(10)]
    history = history_of(sizes, rng)

    tiny = by_rule(flags(profile(load(10, 10, rng), 0), history, **DEFAULTS))
    row_count = tiny["row_count"]
    assert row_count.outcome == "flag"
    assert (row_count.kind, row_count.scope, row_count.column) == ("anomaly", "run", None)
    assert row_count.measured == 10
    median = statistics.median(sizes)
    mad = 1.4826 * statistics.median(abs(n - median) for n in sizes)
    width = max(3 * mad, 0.1 * median)  # the 10% floor wins for these loads
    assert width == 0.1 * median
    assert row_count.threshold == (
        f"median {median:g} ± floor {width:g} (10% of the median; 3·MAD = {3 * mad:.10g}) "
        f"over 10 loads: [{median - width:g}, {median + width:g}]")
    assert "row_count = 10 is below its usual range" in row_count.message
    assert tiny["distinct:id"].outcome == "flag"  # 10 ids where ~1,000 were

    usual = flags(profile(load(1050, 10, rng), 0), history, **DEFAULTS)
    assert by_rule(usual)["row_count"].outcome == "pass"
    assert flagged(usual) == []
    assert {r.kind for r in usual} == {"anomaly"}
    assert len(usual) == len(history[-1])  # every metric checked: 2 + 5 columns' metrics


def test_nothing_is_checked_before_min_loads_loads_exist():
    history = [{"row_count": 1000.0}] * 4
    assert flags({"row_count": 10.0}, history, **DEFAULTS) == []
    assert flagged(flags({"row_count": 10.0}, [*history, {"row_count": 1000.0}],
                         **DEFAULTS)) == ["row_count"]
    # a metric counts the loads that have it (a column added two loads ago has 2)
    newer = [{"row_count": 1000.0}] * 3 + [{"row_count": 1000.0, "null_ratio:x": 0.0}] * 2
    assert flagged(flags({"row_count": 1000.0, "null_ratio:x": 0.9}, newer, **DEFAULTS)) == []


def test_only_the_last_window_loads_count():
    rng = random.Random(7)
    history = ([{"row_count": float(rng.randint(95, 105))} for _ in range(15)]
               + [{"row_count": float(rng.randint(980, 1020))} for _ in range(10)])
    recent = {"window": 10, "k": 3.0, "min_loads": 5}
    assert flagged(flags({"row_count": 1000.0}, history, **recent)) == []
    assert flagged(flags({"row_count": 100.0}, history, **recent)) == ["row_count"]
    # over all 25 loads the old volume (15 of them) is the usual one
    everything = {**recent, "window": 25}
    assert flagged(flags({"row_count": 1000.0}, history, **everything)) == ["row_count"]
    assert "over 25 loads" in flags({"row_count": 1.0}, history, **everything)[0].threshold


def test_a_jump_in_a_null_ratio_is_flagged_on_its_column():
    rng = random.Random(3)
    history = history_of([1000] * 8, rng)
    assert all(0 < h["null_ratio:email"] < 0.03 for h in history)
    current = profile(load(1000, 8, rng, null_share=0.3), 0)
    results = by_rule(flags(current, history, **DEFAULTS))
    null_ratio = results["null_ratio:email"]
    assert null_ratio.outcome == "flag"
    assert (null_ratio.column, null_ratio.dimension) == ("email", "completeness")
    assert 0.25 < null_ratio.measured < 0.35
    assert "null_ratio:email" in null_ratio.message
    # 30% fewer emails are also 30% fewer distinct ones; nothing else moved
    assert sorted(flagged(list(results.values()))) == ["distinct:email", "null_ratio:email"]


def test_a_constant_history_has_mad_zero_and_the_floor_decides():
    history = [{"row_count": 1000.0, "null_ratio:x": 0.0, "min:x": 5.0}] * 10
    results = by_rule(flags({"row_count": 1100.0, "null_ratio:x": 0.01, "min:x": 5.0},
                            history, **DEFAULTS))
    assert [r.outcome for r in results.values()] == ["pass", "pass", "pass"]
    assert results["row_count"].threshold == (
        "median 1000 ± floor 100 (10% of the median; 3·MAD = 0) over 10 loads: [900, 1100]")
    assert results["null_ratio:x"].threshold == (
        "median 0 ± floor 0.01 (absolute; 3·MAD = 0) over 10 loads: [-0.01, 0.01]")
    # just past each floor is flagged; min/max tolerate float rounding only
    results = by_rule(flags({"row_count": 1100.5, "null_ratio:x": 0.0101, "min:x": 5.000001},
                            history, **DEFAULTS))
    assert [r.outcome for r in results.values()] == ["flag", "flag", "flag"]
    assert flagged(flags({"row_count": 899.9}, history, **DEFAULTS)) == ["row_count"]
    assert flagged(flags({"min:x": 5.0 + 1e-12}, history, **DEFAULTS)) == []


def test_a_spread_history_uses_k_mad_and_says_so():
    history = [{"max:x": v} for v in (100.0, 110.0, 120.0, 130.0, 140.0)]
    # median 120, MAD = 1.4826 * median(20, 10, 0, 10, 20) = 14.826, 3·MAD = 44.478
    [result] = flags({"max:x": 164.0}, history, **DEFAULTS)
    assert result.threshold == ("median 120 ± 3·MAD (MAD 14.826) over 5 loads: "
                                "[75.522, 164.478]")
    assert result.outcome == "pass"
    assert flags({"max:x": 164.5}, history, **DEFAULTS)[0].outcome == "flag"
    assert flags({"max:x": 75.0}, history, **DEFAULTS)[0].message.startswith(
        "anomaly: max:x = 75 is below its usual range")
    assert flags({"max:x": 120.0}, history, k=1.0, window=20, min_loads=5)[0].threshold \
        == "median 120 ± 1·MAD (MAD 14.826) over 5 loads: [105.174, 134.826]"
    assert flags({"max:x": math.nan}, history, **DEFAULTS)[0].outcome == "flag"


def test_profile_of_numbers_times_dates_and_decimals():
    rows = pa.table({
        "n": pa.array([3, None, -7, 12], pa.int32()),
        "f": pa.array([1.5, math.nan, -2.25, None]),
        "dec": pa.array([Decimal("10.25"), Decimal("-3.50"), None, Decimal("0.01")],
                        pa.decimal128(12, 2)),
        "day": pa.array([dt.date(1970, 1, 11), dt.date(2026, 12, 4), None, None]),
        "ts": pa.array([dt.datetime(2026, 12, 4, 17, 0, 0, 250000), None, None,
                        dt.datetime(1969, 12, 31, 23, 59, 59)], pa.timestamp("ns")),
        "tz": pa.array([dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone.utc)] * 4,
                       pa.timestamp("ms", "Europe/Paris")),
        "t": pa.array([dt.time(0, 0, 1, 500000), dt.time(23, 59, 59), None, None],
                      pa.time64("us")),
        "flag": pa.array([True, False, None, True]),
        "name": pa.array(["a", "b", "b", None]).dictionary_encode(),
    })
    metrics = profile(rows, 1)
    assert metrics["row_count"] == 4
    assert metrics["reject_ratio"] == 1 / 5
    assert (metrics["min:n"], metrics["max:n"], metrics["null_ratio:n"]) == (-7, 12, 0.25)
    assert (metrics["min:f"], metrics["max:f"]) == (-2.25, 1.5)  # NaN is no extreme
    assert (metrics["min:dec"], metrics["max:dec"]) == (-3.5, 10.25)
    assert (metrics["min:day"], metrics["max:day"]) == (
        10, (dt.date(2026, 12, 4) - dt.date(1970, 1, 1)).days)
    epoch = dt.datetime(2026, 12, 4, 17, tzinfo=dt.timezone.utc).timestamp()
    assert (metrics["min:ts"], metrics["max:ts"]) == (-1.0, epoch + 0.25)
    assert metrics["min:tz"] == metrics["max:tz"] == dt.datetime(
        2026, 1, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    assert (metrics["min:t"], metrics["max:t"]) == (1.5, 86399.0)
    assert metrics["distinct:flag"] >= 1 and "min:flag" not in metrics
    assert metrics["null_ratio:name"] == 0.25 and "max:name" not in metrics
    assert metrics["distinct:n"] > 0 and metrics["distinct:name"] > 0


def test_nested_and_binary_columns_get_a_null_ratio_only():
    rows = pa.table({
        "blob": pa.array([b"\x00", None, b"x"]),
        "tags": pa.array([["a"], None, []]),
        "address": pa.array([{"city": "Oslo"}, None, None]),
        "attrs": pa.array([[("k", 1)], None, None], pa.map_(pa.string(), pa.int64())),
        "nothing": pa.nulls(3),
    })
    metrics = profile(rows, 0)
    assert metrics == {"row_count": 3, "reject_ratio": 0, "null_ratio:blob": 1 / 3,
                       "null_ratio:tags": 1 / 3, "null_ratio:address": 2 / 3,
                       "null_ratio:attrs": 2 / 3, "null_ratio:nothing": 1}


HOSTILE = ['a"b', "with space", "ünïcødé ✓", "dot.ted", "A", "a", "'; DROP TABLE t; --",
           'x") FROM y; --', "", "count(*)", "null_ratio:x"]


def test_hostile_column_names_are_profiled_as_themselves():
    rows = pa.Table.from_arrays(
        [pa.array([i, None, i + 10]) for i in range(len(HOSTILE))], names=HOSTILE)
    metrics = profile(rows, 0)
    for i, name in enumerate(HOSTILE):
        assert metrics[f"null_ratio:{name}"] == 1 / 3, name
        assert (metrics[f"min:{name}"], metrics[f"max:{name}"]) == (i, i + 10), name
    assert len(metrics) == 2 + 4 * len(HOSTILE)
    assert by_rule(profile_results(metrics))["null_ratio:null_ratio:x"].column == "null_ratio:x"


def test_two_thousand_columns_in_chunks_and_from_a_reader():
    width = 2000
    rows = pa.Table.from_arrays(
        [pa.array([c, c + 1, None]) if c % 2 else pa.array([f"v{c}", None, None])
         for c in range(width)], names=[f"col {c}" for c in range(width)])
    assert width > 3 * CHUNK_COLUMNS
    metrics = profile(rows, 3)
    assert metrics["row_count"] == 3 and metrics["reject_ratio"] == 0.5
    assert len(metrics) == 2 + width * 2 + (width // 2) * 2  # min/max on the numbers
    for c in (1, CHUNK_COLUMNS - 1, CHUNK_COLUMNS + 1, width - 1):
        assert (metrics[f"min:col {c}"], metrics[f"max:col {c}"]) == (c, c + 1)
        assert metrics[f"null_ratio:col {c}"] == 1 / 3
    for c in (0, CHUNK_COLUMNS, width - 2):
        assert metrics[f"null_ratio:col {c}"] == 2 / 3 and f"min:col {c}" not in metrics
    assert profile(rows.to_reader(max_chunksize=2), 3) == metrics


def test_a_reader_of_several_batches_profiles_like_the_table():
    rows = load(5000, 3, random.Random(1))
    assert profile(rows.to_reader(max_chunksize=700), 2) == profile(rows, 2)


def test_an_empty_load_has_defined_ratios():
    rows = load(0, 0, random.Random(1))
    metrics = profile(rows, 0)
    assert metrics["row_count"] == 0 and metrics["reject_ratio"] == 0
    assert metrics["null_ratio:email"] == 0 and metrics["distinct:email"] == 0
    assert not any(name.startswith(("min:", "max:")) for name in metrics)
    assert profile(rows, 5)["reject_ratio"] == 1.0
    assert profile(pa.table({}), 0) == {"row_count": 0, "reject_ratio": 0}
    # an empty load among full ones is flagged, and nothing divides by zero
    history = [{"row_count": 1000.0, "null_ratio:email": 0.01}] * 5
    assert flagged(flags(metrics, history, **DEFAULTS)) == ["row_count"]


def test_profile_results_record_each_metric_as_info():
    results = profile_results({"row_count": 10.0, "distinct:a:b": 3.0, "reject_ratio": 0.5})
    assert results[0] == CheckResult(
        rule="row_count", kind="profile", scope="run", column=None,
        dimension="completeness", severity=None, business_impact=None, measured=10.0,
        threshold=None, outcome="info", message="row_count = 10")
    assert [(r.column, r.dimension) for r in results[1:]] == [
        ("a:b", "uniqueness"), (None, "conformity")]


def custom(value: object, name: str = "anomaly") -> list[dict[str, object]]:
    return [{"property": "owner", "value": "sales"}, {"property": name, "value": value}]


def test_a_contract_opts_in_to_blocking_on_anomalies():
    assert blocks(custom("block")) is True
    assert blocks(custom("record")) is False
    assert blocks(None) is False and blocks([]) is False
    assert anomaly_problems(custom("block"), "schema[0] (orders)") == []


@pytest.mark.parametrize(("properties", "problem"), [
    (custom("Block"), "schema[0].customProperties[1]: anomaly value 'Block' is not one of "
                      "block, record; did you mean 'block'?"),
    (custom(True), "anomaly value True is not one of block, record"),
    (custom("block", "Anomaly"), "customProperties[1]: property 'Anomaly' is not read; "
                                 "write it 'anomaly' (lower case)"),
    (custom("block") + custom("record")[1:], "anomaly is given 2 times; keep one"),
    ({"anomaly": "block"}, "schema[0].customProperties: must be a list"),
])
def test_a_bad_anomaly_property_is_a_lint_problem(properties: object, problem: str):
    [found] = anomaly_problems(properties, "schema[0]")
    assert problem in found
    with pytest.raises(ConfigError, match=r"anomaly|customProperties"):
        blocks(properties)


def test_min_and_max_tolerate_five_percent_of_the_columns_usual_range():
    history = [{"min:x": 0.0 + i % 2, "max:x": 999.0 + i % 2} for i in range(10)]
    # the usual range is ~999, so the floor (50) beats 3·MAD (2.2)
    [result] = flags({"max:x": 960.0}, history, **DEFAULTS)
    assert result.outcome == "pass"
    assert result.threshold == ("median 999.5 ± floor 49.95 (5% of the column's usual "
                                "range; 3·MAD = 2.2239) over 10 loads: [949.55, 1049.45]")
    assert flagged(flags({"max:x": 1050.0, "min:x": -60.0}, history, **DEFAULTS)) == [
        "max:x", "min:x"]
    # epoch seconds: a timestamp's floor is a share of its range, not of 1970 to now
    day = 86_400.0
    times = [{"min:t": 1.7e9 + i * day, "max:t": 1.7e9 + (i + 1) * day} for i in range(10)]
    assert flagged(flags({"max:t": 1.7e9 + 11 * day}, times, **DEFAULTS)) == []
    assert flagged(flags({"max:t": 1.7e9 - 30 * day}, times, **DEFAULTS)) == ["max:t"]


TARGET = {"tenant_id": "acme", "catalog": {"warehouse": "/tmp/warehouse"}}


def test_the_target_settings_default_and_check_the_anomaly_band():
    from target_dativo_iceberg.settings import TargetSettings

    settings = TargetSettings.from_config(TARGET)
    assert (settings.anomaly_k, settings.anomaly_window, settings.anomaly_min_loads) == (
        3.0, 20, 5)
    tuned = TargetSettings.from_config({**TARGET, "anomaly_k": Decimal("2.5"),
                                        "anomaly_window": 3, "anomaly_min_loads": 3})
    assert (tuned.anomaly_k, tuned.anomaly_window, tuned.anomaly_min_loads) == (2.5, 3, 3)


@pytest.mark.parametrize(("config", "message"), [
    ({"anomaly_k": 0}, "anomaly_k: 0 must be a number > 0"),
    ({"anomaly_k": -3}, "anomaly_k: -3 must be a number > 0"),
    ({"anomaly_min_loads": 2}, "anomaly_min_loads: 2 must be at least 3"),
    ({"anomaly_window": 4}, "anomaly_window: 4 is less than anomaly_min_loads (5)"),
    ({"anomaly_window": 1001}, "anomaly_window: 1001 must be at most 1000"),
])
def test_bad_anomaly_settings_name_the_key(config: dict[str, object], message: str):
    from target_dativo_iceberg.settings import TargetSettings

    with pytest.raises(ConfigError) as raised:
        TargetSettings.from_config({**TARGET, **config})
    assert str(raised.value).startswith(message)


def test_a_column_name_given_twice_is_refused():
    rows = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"])
    with pytest.raises(ValueError, match=r"columns \['x'\] appear more than once"):
        profile(rows, 0)
