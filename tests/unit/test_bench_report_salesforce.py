"""bench/report.py's Salesforce rows (issue 20): the tap and the pipe against the
requests + csv.reader floor of the same Bulk job, and the singer-io peer's reason for no
row."""

from __future__ import annotations

from bench.report import RUN_GROUPS, Result, render

MB = 2**20


def result(key: str, seconds: float) -> Result:
    return Result(key, seconds=seconds, peak_rss=80 * MB, rows=200_000,
                  expected_rows=200_000)


def test_salesforce_rows_compare_with_their_own_floor() -> None:
    results = [result("salesforce_floor", 2.0), result("salesforce_tap", 8.0),
               result("salesforce_iceberg", 16.0)]
    report, ok = render(results, 1_000_000, 333.0)
    assert ok
    # rows/s from the 200,000 Accounts, not --records; x floor against the Bulk floor
    assert ("| tap-dativo-salesforce (same Accounts via Bulk 2.0 to RECORDs on stdout) | "
            "8.00 | 25,000 | 0.25x | 80 |") in report
    assert ("| Salesforce -> Iceberg through Bulk 2.0 (tap | target) | 16.00 | 12,500 | "
            "0.12x |") in report
    assert ("- info: tap-dativo-salesforce (same Accounts via Bulk 2.0 to RECORDs on "
            "stdout) 25,000 rows/s, 0.25x the floor (100,000 rows/s)") in report
    assert ("tap-salesforce 2.8.1 (singer-io) not run: it logs in at the hard-coded "
            "https://login.salesforce.com/services/oauth2/token") in report


def test_no_salesforce_lines_without_salesforce_rows() -> None:
    report, _ = render([Result("floor", seconds=1.0, peak_rss=MB, rows=10)], 10, 1.0)
    assert "tap-salesforce" not in report


def test_runs_salesforce_names_every_salesforce_row() -> None:
    assert RUN_GROUPS["salesforce"] == ("salesforce_floor", "salesforce_tap",
                                        "salesforce_iceberg")
