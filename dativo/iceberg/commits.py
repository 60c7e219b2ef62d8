"""Committing to a table that other writers commit to: one retry loop for every commit.

Iceberg commits are optimistic: a commit that lost the race to another writer fails
with :class:`CommitFailedException` (or pyiceberg's :class:`ValidationException`, when
its own conflict checks refuse it), and nothing of it is in the table. The loads and
``dativo maintain compact`` then wait (exponential backoff, jittered so writers that
collided do not collide again), refresh the table and try again, up to
:data:`COMMIT_ATTEMPTS` times.

This loop plans; one level below it, a plan is committed again without planning anew.
Each attempt of a plain append is re-applied by pyiceberg itself after a conflict, and
each attempt of an upsert, overwrite or version activation re-stages its plan
(``IcebergWriter._commit_planned``) while the commits in between touched none of its
keys and files; both follow the table's ``commit.retry.*`` properties
(:func:`dativo.iceberg.table_changes.replay_waits`). The levels stay apart because a
re-commit is cheap (metadata only) and a new plan is not (it reads keys again and may
rewrite files), so under contention the cheap re-commits are tried first. Worst case
with pyiceberg's defaults (4 re-commits, 100 ms doubling): 6 plans x 5 commits = 30
commit attempts, sleeping at most about 9.3 s here (0.2 + 0.4 + 0.8 + 1.6 + 3.2 s, x1.5
jitter) plus 6 x 1.65 s between re-commits, about 19 s, before a :class:`CommitError`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table

from dativo.errors import DativoError

LOGGER = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 6
COMMIT_BACKOFF_SECONDS = (0.1, 5.0)  # first and largest wait between attempts, before jitter
CONFLICTS = (CommitFailedException, ValidationException)
"""What a lost race raises; pyiceberg guarantees such a commit did not land."""

T = TypeVar("T")


def commit_with_retry(table: Table, attempt: Callable[[], T], *,
                      gave_up: Callable[[Exception, int], DativoError],
                      on_conflict: Callable[[Exception], None] | None = None) -> T:
    """Run ``attempt`` (which commits to ``table``) until it does not conflict.

    After each conflict ``on_conflict`` is told (metrics), then the loop waits and
    refreshes ``table``, so the next attempt plans on what the other writers committed.

    Raises:
        DativoError: ``gave_up(exc, attempts)`` (usually a :class:`CommitError`) when
            the last attempt conflicted too; the caller cleans up there.
    """
    for number in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return attempt()
        except CONFLICTS as exc:
            if on_conflict is not None:
                on_conflict(exc)
            if number >= COMMIT_ATTEMPTS:
                raise gave_up(exc, number) from exc
            _wait(table, number, exc)
    raise AssertionError("unreachable")


def _wait(table: Table, number: int, exc: Exception) -> None:
    first, largest = COMMIT_BACKOFF_SECONDS
    delay = min(largest, first * 2**number) * random.uniform(0.5, 1.5)
    LOGGER.warning("Commit conflict on %s (attempt %d of %d: %s); retrying in %.2f s",
                   ".".join(table.name()), number, COMMIT_ATTEMPTS, exc, delay)
    time.sleep(delay)
    table.refresh()
