"""The Dativo exception tree.

::

    DativoError                     root; the CLIs print one line and exit 2
    ├── ConfigError                 a setting or file a user must fix
    │   └── ContractLintError       an ODCS contract fails the schema or our semantic checks
    ├── CodecError                  input that cannot be decoded (bad JSON, protocol order)
    ├── ContractViolation           records were rejected in ``strict`` mode
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
    """Raised at end of input in ``strict`` mode when any record was rejected.

    Attributes:
        rejected: Mapping of stream -> {field/rule: count}.
    """

    def __init__(self, rejected: dict[str, dict[str, int]]) -> None:
        self.rejected = rejected
        parts = []
        for stream, reasons in sorted(rejected.items()):
            detail = ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items()))
            parts.append(f"stream '{stream}': {detail}")
        super().__init__(
            "validation_mode=strict and records were rejected (they are in the dead-letter "
            "tables; fix the source or the contract, or use validation_mode=warn): "
            + "; ".join(parts)
        )


class CommitError(DativoError):
    """Raised when writing to the Iceberg catalog fails after retries."""
