"""Bulk API 2.0 query jobs: create, poll until done, download the CSV results by locator.

A job is created with ``POST /jobs/query`` (``queryAll`` when deleted records are
wanted), polled with ``GET /jobs/query/<id>`` (the interval doubles from 0.5 s up to
``bulk_poll_seconds``) until ``JobComplete``, then its results are read page by page:
``GET /jobs/query/<id>/results?maxRecords=<n>[&locator=<l>]`` answers CSV and the
``Sforce-Locator`` of the next page (``null`` after the last). A job that ends
``Failed`` or ``Aborted`` is one error naming the object, the job id and Salesforce's
``errorMessage``: exit 75 when Salesforce says the failure is temporary (a timeout, an
internal error, "retry"), else exit 2.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from dativo.errors import ConfigError
from dativo.resilience import ApiUnavailableError
from tap_dativo_salesforce.client import SalesforceClient

LOGGER = logging.getLogger(__name__)
FIRST_POLL_SECONDS = 0.5
TEMPORARY = ("timeout", "timed out", "internal server error", "internalerror", "retry",
             "unavailable", "try again")
"""Words of a failed job's errorMessage that make a rerun worth it."""


class BulkJobFailed(ConfigError):
    """A Bulk query job failed for a reason a user must fix (the query, a permission):
    exit 2."""


class BulkJobUnavailable(ApiUnavailableError):
    """A Bulk query job failed for a temporary reason, or did not finish in time:
    exit 75, a rerun may succeed."""


def _failure(sobject: str, job_id: str, message: str) -> Exception:
    text = (f"Bulk API 2.0 query job {job_id} for {sobject} failed: {message}")
    if any(word in message.lower() for word in TEMPORARY):
        return BulkJobUnavailable(f"{text}; Salesforce calls it temporary: run again "
                                  "later")
    return BulkJobFailed(f"{text}; fix the cause (the query, the user's permissions on "
                         f"{sobject}), or read {sobject} through REST "
                         f"(read_method {{\"{sobject}\": \"rest\"}})")


class BulkQuery:
    """One object's query as a Bulk 2.0 job."""

    def __init__(self, client: SalesforceClient, *, page_records: int, poll_seconds: float,
                 timeout_seconds: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.page_records = page_records
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.clock = clock

    @property
    def jobs_path(self) -> str:
        return f"{self.client.data_path}/jobs/query"

    def rows(self, sobject: str, soql: str, *, include_deleted: bool
             ) -> Iterator[dict[str, str]]:
        """The job's result rows as CSV text cells, header names as keys."""
        job = self.client.post_json(self.jobs_path, {
            "operation": "queryAll" if include_deleted else "query", "query": soql,
            "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF"})
        job_id = str(job["id"])
        LOGGER.info("%s: Bulk API 2.0 query job %s created", sobject, job_id)
        self._wait(sobject, job_id)
        locator: str | None = None
        while True:
            params: dict[str, Any] = {"maxRecords": self.page_records}
            if locator:
                params["locator"] = locator
            response = self.client.send("GET", f"{self.jobs_path}/{job_id}/results",
                                        params=params, accept="text/csv")
            yield from csv.DictReader(io.StringIO(response.content.decode("utf-8")))
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return

    def _wait(self, sobject: str, job_id: str) -> None:
        started = self.clock()
        interval = FIRST_POLL_SECONDS
        while True:
            job = self.client.get_json(f"{self.jobs_path}/{job_id}")
            state = job.get("state")
            if state == "JobComplete":
                LOGGER.info("%s: job %s complete, %s records", sobject, job_id,
                            job.get("numberRecordsProcessed"))
                return
            if state in ("Failed", "Aborted"):
                raise _failure(sobject, job_id, str(job.get("errorMessage") or state))
            if self.clock() - started > self.timeout_seconds:
                raise BulkJobUnavailable(
                    f"Bulk API 2.0 query job {job_id} for {sobject} is still {state} after "
                    f"{self.timeout_seconds:g} s; raise bulk_timeout_seconds, or run again "
                    "later (the job keeps running in Salesforce)")
            self.sleep(min(interval, self.poll_seconds))
            interval *= 2
