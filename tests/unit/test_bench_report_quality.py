"""bench/report.py's quality row (issue 16): the pipe with ten quality rules against the
same pipe without them, in one bench run; its goal is at most 15% more wall time."""

from __future__ import annotations

from bench.report import RUN_GROUPS, Result, render

MB = 2**20


def result(key: str, seconds: float, rss_mb: int = 300) -> Result:
    return Result(key, seconds=seconds, peak_rss=rss_mb * MB, rows=1_000_000)


def test_the_quality_row_is_compared_with_the_pipe_of_the_same_run() -> None:
    report, ok = render([result("floor", 4.0), result("target", 10.0, 300),
                         result("target_quality", 11.0, 330)], 1_000_000, 333.0)
    assert ok
    assert ("| target-dativo-iceberg (pipe, 10 quality rules on) | 11.00 | 90,909 | 0.36x "
            "| 330 |") in report
    assert ("- PASS: target-dativo-iceberg (pipe, 10 quality rules on) 1.10x the wall time "
            "of the same pipe without them (11.00 s vs 10.00 s; goal <= 1.15x)") in report
    assert ("- info: target-dativo-iceberg (pipe, 10 quality rules on) peak RSS 330 MB, "
            "1.10x the run without them (300 MB)") in report


def test_more_than_fifteen_percent_slower_fails_the_goal() -> None:
    report, _ = render([result("target", 10.0), result("target_quality", 11.6)],
                       1_000_000, 333.0)
    assert "- FAIL: target-dativo-iceberg (pipe, 10 quality rules on) 1.16x" in report


def test_a_quality_run_whose_rules_did_not_run_is_a_failed_row() -> None:
    failed = Result("target_quality", error="no bench.perf.events__quality: the quality "
                    "rules of bench/perf/events_quality.odcs.yaml did not run")
    report, ok = render([result("target", 10.0), failed], 1_000_000, 333.0)
    assert not ok
    assert "| target-dativo-iceberg (pipe, 10 quality rules on) | FAILED | | | |" in report
    assert "the wall time of the same pipe" not in report


def test_runs_quality_runs_both_pipes() -> None:
    assert RUN_GROUPS["quality"] == ("floor", "target", "target_quality")


def test_the_gate_time_with_and_without_the_rules_is_printed() -> None:
    on = result("target_quality", 11.0)
    on.gate_seconds = {"on": [2.0, 2.5, 1.5], "off": [0.5, 0.75, 1.0]}
    report, _ = render([result("target", 10.0), on], 1_000_000, 333.0)
    assert ("- info: target-dativo-iceberg (pipe, 10 quality rules on): the commit gate took "
            "2.00 s with the rules, 0.75 s without (the anomaly profile, in both; median per "
            "run), so the rules cost 1.25 s") in report
