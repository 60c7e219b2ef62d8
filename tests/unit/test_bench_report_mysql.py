"""bench/report.py's MySQL rows: the floor ratio, the goal checks, and a peer that could
not run reported with its reason (issue 15's bench rows)."""

from __future__ import annotations

from bench.report import RUN_GROUPS, Result, render

MB = 2**20


def result(key: str, seconds: float, rss_mb: int = 100, **extra: object) -> Result:
    return Result(key, seconds=seconds, peak_rss=rss_mb * MB, rows=1_000_000, **extra)


def test_mysql_rows_compare_with_the_pymysql_floor_and_the_faster_peer() -> None:
    results = [
        result("mysql_floor", 10.0), result("mysql_tap", 20.0), result("mysql_batch", 2.0),
        result("mysql_batch_large", 25.0, rss_mb=110, expected_rows=10_000_000),
        result("mysql_peer_singer", 40.0), result("mysql_peer_meltanolabs", 30.0),
        result("mysql_iceberg", 3.5), result("mysql_iceberg_one", 1.0, expected_rows=1),
    ]
    report, ok = render(results, 1_000_000, 333.0)
    assert ok
    assert "| tap-dativo-mysql (same table to stdout, RECORDs) | 20.00 | 50,000 | 0.50x |" in report
    assert ("| tap-dativo-mysql (10N-row table to Parquet BATCH files) | 25.00 | 400,000 "
            "| n/a |") in report
    assert ("- PASS: tap-dativo-mysql (same table to Parquet BATCH files) 15.00x the faster "
            "peer (peer: meltanolabs-tap-mysql 0.0.1a1) (goal >= 10.0x)") in report
    assert ("- info: tap-dativo-mysql (same table to stdout, RECORDs) 1.50x the faster "
            "peer") in report
    assert "peak RSS 110 MB, 1.10x that of N rows" in report
    assert ("- FAIL: MySQL -> Iceberg through BATCH (tap | target) 285,714 rows/s, beyond "
            "the fixed cost 400,000 rows/s (goal >= 500,000 rows/s beyond it)") in report

def test_a_peer_that_cannot_run_is_a_failed_row_with_its_reason() -> None:
    peer = Result("mysql_peer_singer",
                  error="RuntimeError: tap-mysql==1.17.7 does not install on Python 3.11.7")
    report, ok = render([result("mysql_batch", 2.0), peer, result("mysql_peer_meltanolabs",
                                                                  30.0)], 1_000_000, 333.0)
    assert not ok
    assert "| peer: tap-mysql 1.17.7, singer-io (same table to stdout) | FAILED | | | |" in report
    assert ("- peer: tap-mysql 1.17.7, singer-io (same table to stdout): RuntimeError: "
            "tap-mysql==1.17.7 does not install on Python 3.11.7") in report
    assert "15.00x the faster peer (peer: meltanolabs-tap-mysql 0.0.1a1)" in report


def test_runs_mysql_names_every_mysql_row() -> None:
    assert RUN_GROUPS["mysql"] == (
        "mysql_floor", "mysql_tap", "mysql_batch", "mysql_batch_large", "mysql_peer_singer",
        "mysql_peer_meltanolabs", "mysql_iceberg", "mysql_iceberg_one")
