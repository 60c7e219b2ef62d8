"""bench/report.py's Google Sheets rows (issue 18): the tap and the pipe against the
requests + orjson floor of the same run, and the singer-io peer's reason for no row."""

from __future__ import annotations

from bench.report import RUN_GROUPS, Result, render

MB = 2**20


def result(key: str, seconds: float) -> Result:
    return Result(key, seconds=seconds, peak_rss=80 * MB, rows=100_000,
                  expected_rows=100_000)


def test_sheets_rows_compare_with_their_own_floor() -> None:
    results = [result("sheets_floor", 1.0), result("sheets_tap", 4.0),
               result("sheets_iceberg", 8.0)]
    report, ok = render(results, 1_000_000, 333.0)
    assert ok
    # rec/s from the sheet's 100,000 rows, not --records; x floor against the Sheets floor
    assert ("| tap-dativo-google-sheets (same sheet to RECORDs on stdout) | 4.00 | 25,000 "
            "| 0.25x | 80 |") in report
    assert "| Google Sheets -> Iceberg (tap | target) | 8.00 | 12,500 | 0.12x |" in report
    assert ("- info: tap-dativo-google-sheets (same sheet to RECORDs on stdout) 25,000 "
            "rows/s, 0.25x the floor (100,000 rows/s)") in report
    assert "tap-google-sheets 3.1.2 (singer-io) not run: its client hard-codes" in report


def test_no_sheets_lines_without_sheets_rows() -> None:
    report, _ = render([Result("floor", seconds=1.0, peak_rss=MB, rows=10)], 10, 1.0)
    assert "tap-google-sheets" not in report


def test_runs_sheets_names_every_sheets_row() -> None:
    assert RUN_GROUPS["sheets"] == ("sheets_floor", "sheets_tap", "sheets_iceberg")
