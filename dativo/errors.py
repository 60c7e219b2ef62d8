"""The Dativo exception tree.

::

    DativoError                     root; the CLIs print one line and exit 2
    ├── ConfigError                 a setting or file a user must fix
    │   └── ContractLintError       an ODCS contract fails the schema or our semantic checks
    ├── CodecError                  input that cannot be decoded (bad JSON, protocol order)
    ├── ContractViolation           a batch had rejected records, in ``strict`` mode
    └── CommitError                 an Iceberg commit failed after its retries

Every message names what is wrong and what to do about it. Third-party errors are
translated where they are caught (``raise CommitError(...) from exc``).
"""

from __future__ import annotations


class DativoError(Exception):
    """Raised for any failure the user can act on; never for programming errors."""


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
