"""Where the target's tables live in a catalog, and the names it gives its own things.

A stream's table is ``(<tenant>, <domain>).<table>``: the tenant is the first namespace
level, so one tenant's run cannot write into another tenant's namespace. The target's
own tables sit beside a stream's under a reserved suffix, and its commits mark their
snapshot summaries with the ``dativo.*`` keys below. No pyiceberg import: the target
and the contract checks use these names on the main thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo.errors import ConfigError
from dativo.names import check_tenant, table_name

if TYPE_CHECKING:
    from dativo.contracts.model import Contract

DEAD_LETTER_SUFFIX = "__dead_letter"
QUALITY_SUFFIX = "__quality"
MARKDOWN_SUFFIXES = ("__markdown", "__md_files", "__kv", "__documents")
"""Tables of the Markdown-KV storage patterns: string, raw_file, row_per_kv, document_level."""
RESERVED_SUFFIXES = (DEAD_LETTER_SUFFIX, QUALITY_SUFFIX, *MARKDOWN_SUFFIXES)
"""Suffixes the target appends to a stream's table name for its own tables. Each starts
with ``__``, which :func:`dativo.names.table_name` never produces from a stream or
contract name, so no stream can write into (or pre-create) another stream's table; a
new suffix must start with ``__`` too (a test pins this)."""
STATE_PROPERTY = "dativo.state"
"""Snapshot-summary key holding the Singer STATE that the commit covers."""
RUN_ID_PROPERTY = "dativo.run-id"
MAINTENANCE_PROPERTY = "dativo.maintenance"
"""Snapshot-summary key naming the ``dativo maintain`` job that made the snapshot."""


def table_identifier(tenant_id: str, contract: Contract, suffix: str = "") -> tuple[str, ...]:
    """``(tenant, domain, table + suffix)`` of a contract's table in ``tenant_id``'s run.

    ``suffix`` (else the contract's ``table_suffix``) is one of
    :data:`RESERVED_SUFFIXES` for the target's own tables beside the stream's, or
    empty.

    Raises:
        ConfigError: The contract declares another tenant, or a name breaks the rules.
    """
    if contract.tenant is not None and contract.tenant != tenant_id:
        raise ConfigError(
            f"contract {contract.source} belongs to tenant {contract.tenant!r}, but this "
            f"target runs for tenant_id {tenant_id!r}; one tenant's run cannot write "
            "into another tenant's namespace"
        )
    return (check_tenant("tenant_id", tenant_id), _named("domain", contract, contract.domain),
            _named("table", contract, contract.name) + (suffix or contract.table_suffix))


def _named(what: str, contract: Contract, name: str) -> str:
    try:
        return table_name(name)
    except ConfigError as exc:
        where = f"contract {contract.source}" if contract.is_odcs else "the SCHEMA"
        raise ConfigError(f"{what} name of {where}: {exc}") from exc
