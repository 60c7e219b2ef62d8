"""bench/report.py's encryption row (issue 19): the pipe with two columns encrypted
against the same pipe in plaintext, in one bench run; its goal is at most 1.5x."""

from __future__ import annotations

from bench.report import RUN_GROUPS, Result, render

MB = 2**20


def result(key: str, seconds: float, rss_mb: int = 300) -> Result:
    return Result(key, seconds=seconds, peak_rss=rss_mb * MB, rows=1_000_000)


def test_the_encrypted_row_is_compared_with_the_plain_pipe_of_the_same_run() -> None:
    report, ok = render([result("floor", 4.0), result("target", 10.0, 300),
                         result("target_encrypted", 14.0, 360)], 1_000_000, 333.0)
    assert ok
    assert ("| target-dativo-iceberg (pipe, 2 string columns encrypted) | 14.00 | 71,429 | "
            "0.29x | 360 |") in report
    assert ("- PASS: target-dativo-iceberg (pipe, 2 string columns encrypted) 1.40x the wall "
            "time of the same pipe in plaintext (14.00 s vs 10.00 s; goal <= 1.5x)") in report
    assert ("- info: target-dativo-iceberg (pipe, 2 string columns encrypted) peak RSS 360 MB, "
            "1.20x the plaintext run (300 MB)") in report


def test_more_than_half_again_slower_fails_the_goal() -> None:
    report, _ = render([result("target", 10.0), result("target_encrypted", 15.1)],
                       1_000_000, 333.0)
    assert "- FAIL: target-dativo-iceberg (pipe, 2 string columns encrypted) 1.51x" in report


def test_a_row_that_stored_plaintext_fails_with_the_reason() -> None:
    failed = Result("target_encrypted", error="bench.perf.events.email is not stored encrypted")
    report, ok = render([result("target", 10.0), failed], 1_000_000, 333.0)
    assert not ok
    assert "| target-dativo-iceberg (pipe, 2 string columns encrypted) | FAILED |" in report
    assert "bench.perf.events.email is not stored encrypted" in report
    assert "2 string columns encrypted) 1." not in report  # no ratio without the run


def test_the_encryption_group_runs_the_plain_pipe_too() -> None:
    assert RUN_GROUPS["encryption"] == ("floor", "target", "target_encrypted")
