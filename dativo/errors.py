"""The Dativo exception tree: every exception the project defines, and what each
command makes of it.

A command (a tap, the target, ``dativo``) reports a :class:`DativoError` as one line and
exit code 2 (:mod:`dativo.exit_codes`), or 75 when the same run may succeed later (marked
"retriable" below, or caused by a lost connection: see ``dativo.exit_codes.RETRY``), with
the traceback only at debug level. The
:class:`InternalError` family is the exception: raised and handled inside the code
(retried, dead-lettered, or translated into a family above with its stream, line or
key), it never reaches a user as is; one that escapes is a bug, reported as unexpected
with exit code 1. A class outside this module names its module::

    DativoError: the root; one line, exit 2
    ├── ConfigError: a setting or a file it names is invalid; the message names the key
    │   ├── ContractLintError: an ODCS contract fails the schema or our semantic checks
    │   ├── FatalApiError (dativo.resilience): the API refused a request (401, 403, 404)
    │   └── BulkJobFailed (tap_dativo_salesforce.bulk): a Salesforce Bulk query job
    │           failed for a reason a user must fix (the query, a permission)
    ├── CodecError: input that cannot be decoded (bad JSON, protocol order, bad values)
    │   ├── MarkdownKVError (dativo.markdown_kv.errors): text that is not Markdown-KV,
    │   │       or a record that cannot be rendered as Markdown-KV
    │   └── InvalidText (target_dativo_iceberg.batches): a pretyped string is not UTF-8
    ├── ContractViolation: a batch had rejected records, in ``strict`` mode
    ├── CommitError: an Iceberg commit failed after its retries (retriable when caused
    │   │       by a lost connection)
    │   └── CommitConflictError: concurrent writers still conflicted after the retries
    │           (retriable)
    ├── QualityError: a ``severity: error`` quality rule failed in ``strict`` mode; the
    │       commit was aborted (dativo.quality)
    ├── ApiUnavailableError (dativo.resilience): an API kept failing; the run stops
    │   │       (retriable)
    │   ├── RetriesExhaustedError (dativo.resilience): a request failed every retry
    │   ├── CircuitOpenError (dativo.resilience): the circuit opened and its probes failed
    │   └── BulkJobUnavailable (tap_dativo_salesforce.bulk): a Bulk query job failed for
    │           a temporary reason, or did not finish in time
    ├── SourceUnavailableError: a source database could not be reached (refused, timed
    │       out) while the tap connected to it (retriable)
    ├── SourceError (tap_dativo_postgres.streams): PostgreSQL refused or broke off a read
    ├── ReplicationError (tap_dativo_postgres.cdc): a replication step was refused
    ├── MySQLReadError (tap_dativo_mysql.streams): MySQL refused or broke off a read
    ├── BinlogError (tap_dativo_mysql.binlog): the server broke off a binlog read
    ├── SnowflakeReadError (tap_dativo_snowflake.client): Snowflake refused a query
    └── InternalError: handled where it is raised; escaping is a bug (exit 1)
        ├── TransientFailure (dativo.resilience): an outcome worth retrying (429, 5xx,
        │       a reset connection); the policy retries it, or raises ApiUnavailableError
        ├── RefusedFile (target_dativo_iceberg.batch_roots): a BATCH file that is not
        │       admitted; becomes a CodecError naming the stream, line and setting
        ├── UnfitValue (tap_dativo_postgres.arrow_reader): a value the Arrow path cannot
        │       carry; becomes a CodecError naming the stream, key and column
        ├── ReadFailed (tap_dativo_mysql.arrow_reader): connectorx refused or broke off
        │       a read; becomes a MySQLReadError naming the table
        ├── NonFiniteDecimal (tap_dativo_postgres.types): a NaN or infinite numeric;
        │       becomes a CodecError naming the stream, key and column
        ├── ZeroDate (tap_dativo_mysql.types): a zero date with ``zero_dates: fail``;
        │       becomes a CodecError naming the stream, key and column
        ├── _BadJsonRows (target_dativo_iceberg.batch_spooled): some records of a batch
        │       break rule ``json``; they are dead-lettered and the rest is loaded
        └── _NoMatch (dativo.iceberg.erasure): a table that cannot hold the subject of
                ``dativo forget``; skipped with a note, or a ConfigError if named

RefusedFile is a ``ValueError`` too: the BATCH file readers catch it with pyarrow's
errors as ``ValueError``. Every message names what is wrong and what to do about it.
Third-party errors are translated where they are caught (``raise CommitError(...) from
exc``); the families a command reports without a translation are listed in
:mod:`dativo.exit_codes`.
"""

from __future__ import annotations


class DativoError(Exception):
    """The root of every project exception: a failure the user can act on, or (the
    :class:`InternalError` family) one handled inside the code; never a bug."""


class ConfigError(DativoError):
    """Raised when configuration or a referenced file is invalid."""


class ContractLintError(ConfigError):
    """Raised when a data contract fails linting.

    Attributes:
        path: The contract file.
        problems: One line per problem, each naming the offending key.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        if len(problems) == 1:  # one problem, one line
            super().__init__(f"contract {path} is invalid: {problems[0]}")
            return
        joined = "\n  - ".join(problems)
        super().__init__(f"contract {path} is invalid:\n  - {joined}")


class CodecError(DativoError):
    """Raised when a message or file cannot be decoded.

    Attributes:
        line: 1-based input line number, when known.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        prefix = f"line {line}: " if line is not None else ""
        super().__init__(prefix + message)


class ContractViolation(DativoError):
    """Raised in ``strict`` mode by the first batch with a rejected record: that batch,
    and everything after it, is neither loaded nor acknowledged with a STATE.

    Attributes:
        stream: The stream whose rejected record is named.
        rejected: Rejected records of the batch.
        received: Records of the stream in the batch.
        line: 1-based input line of the first rejected record.
        record: That record's key and source (e.g. ``customer_id=5, a.csv line 6``), or "".
        reasons: Its failed rules, ``<field> failed <rule>``.
        dead_letter: The dead-letter table holding the batch's rejected records.
        others: Rejected record counts of other streams in the same batch.
    """

    def __init__(self, stream: str, *, rejected: int, received: int, line: int, record: str,
                 reasons: list[str], dead_letter: str, others: dict[str, int]) -> None:
        self.stream = stream
        self.rejected = rejected
        self.received = received
        self.line = line
        self.record = record
        self.reasons = reasons
        self.dead_letter = dead_letter
        self.others = others
        which = f"at input line {line}" + (f" ({record})" if record else "")
        also = "".join(f"; stream '{name}' had {count} more in the same batch"
                       for name, count in sorted(others.items()))
        super().__init__(
            f"stream '{stream}': validation_mode=strict rejected {rejected} of {received} "
            f"record(s) in a batch, first {which}: {', '.join(reasons)}{also}. Nothing of "
            f"that batch was loaded and no STATE after it was emitted; the rejected records "
            f"are in the dead-letter table {dead_letter}. Fix the data or the contract and "
            "rerun (the tap resumes from the last STATE emitted), or set "
            "validation_mode=warn to load the valid records"
        )


class CommitError(DativoError):
    """Raised when writing to the Iceberg catalog fails after retries."""


class CommitConflictError(CommitError):
    """Raised when a commit still conflicted with concurrent writers after its last
    attempt: nothing of it landed, so the same run may succeed later (exit code 75)."""


class SourceUnavailableError(DativoError):
    """Raised when a tap cannot reach its source database for a reason a rerun may get
    past (refused, timed out; not a refused login): exit code 75."""


class QualityError(DativoError):
    """Raised when a contract's quality rule with ``severity: error`` fails in ``strict``
    mode: the commit is aborted, so the table keeps its snapshot and no STATE is emitted.

    Attributes:
        stream: The stream whose commit was checked.
        table: The table the commit was for.
        failures: The failed blocking results (:class:`dativo.quality.CheckResult`).
    """

    def __init__(self, message: str, *, stream: str, table: str,
                 failures: tuple[object, ...] = ()) -> None:
        self.stream = stream
        self.table = table
        self.failures = failures
        super().__init__(message)


class InternalError(DativoError):
    """Raised and handled inside the code, never shown to a user as is: retried,
    dead-lettered, or translated into a :class:`DativoError` with its context. One that
    escapes is a bug, so the commands report it as unexpected (exit code 1)."""
