"""Which failed runs Dagster retries: only those the dativo plugins report retriable.

A plugin exits 75 (EX_TEMPFAIL) when the same run, unchanged, may pass later: an Iceberg
commit conflict, a source that is down or overloaded. Anything else (a strict contract
violation, a bad setting, a bug) needs a human, so retrying it would only repeat it.
"""

from __future__ import annotations

import dagster as dg

from dativo_dagster.meltano_runs import MeltanoRun
from dativo_dagster.settings import RetrySettings

_BACKOFF = {"none": None, "linear": dg.Backoff.LINEAR, "exponential": dg.Backoff.EXPONENTIAL}
_JITTER = {"none": None, "full": dg.Jitter.FULL, "plus_minus": dg.Jitter.PLUS_MINUS}


def retry_policy(settings: RetrySettings) -> dg.RetryPolicy | None:
    """The Dagster policy of ``settings`` (dativo-dagster.yml ``retries``); None for none."""
    if settings.max_retries == 0:
        return None
    return dg.RetryPolicy(max_retries=settings.max_retries,
                          delay=settings.delay_seconds or None,
                          backoff=_BACKOFF[settings.backoff],
                          jitter=_JITTER[settings.jitter])


def failure_of(run: MeltanoRun, pipeline_name: str) -> dg.Failure:
    """The Failure a failed ``meltano run`` raises: retriable (the RetryPolicy applies)
    only when every failing plugin reported exit code 75; never when a plugin reported
    another failure or Meltano failed with no plugin report to say why."""
    failed = run.failed_reports
    if failed:
        errors = "; ".join(f"{r.plugin} exited {r.exit_code}: {r.error or 'no error line'}"
                           for r in failed)
    else:
        tail = run.last_lines[-1] if run.last_lines else "no output"
        errors = (f"meltano exited {run.exit_code} and no dativo plugin reported a failure "
                  f"(last line: {tail})")
    retriable = run.retriable
    what = ("retriable: the same run may pass later" if retriable
            else "not retried: fix the cause and run again")
    return dg.Failure(
        description=f"{pipeline_name}: {errors} ({what})",
        metadata={
            "exit_code": run.exit_code,
            "retriable": retriable,
            "reports": dg.MetadataValue.json([
                {"plugin": r.plugin, "exit_code": r.exit_code, "error": r.error}
                for r in run.reports]),
        },
        allow_retries=retriable,
    )
