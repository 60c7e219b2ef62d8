"""Rows of ``make bench`` that are one pipe run twice in the same bench run, once with a
feature on: the goal is a ceiling on the wall-time ratio; peak RSS is information."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.report import Result


def slowdown_checks(done: dict[str, Result], off_key: str, on_key: str, label: str,
                    goal: float, compared_with: tuple[str, str]) -> list[str]:
    """The goal line and the RSS line of ``on_key`` against ``off_key``, or nothing when
    either did not run. ``compared_with`` names the ``off`` run in each sentence."""
    off, on = done.get(off_key), done.get(on_key)
    if off is None or on is None or not off.seconds or not on.seconds:
        return []
    ratio = on.seconds / off.seconds
    rss = on.peak_rss / max(1, off.peak_rss)
    verdict = "PASS" if ratio <= goal else "FAIL"
    wall, memory = compared_with
    return [f"- {verdict}: {label} {ratio:.2f}x the wall time of {wall} "
            f"({on.seconds:.2f} s vs {off.seconds:.2f} s; goal <= {goal}x)",
            f"- info: {label} peak RSS {on.peak_rss / 2**20:.0f} MB, {rss:.2f}x {memory} "
            f"({off.peak_rss / 2**20:.0f} MB)"]
