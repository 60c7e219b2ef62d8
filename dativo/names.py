"""Identifier rules: tenants, domains, streams, tables and columns.

Every check matches the *whole* value (``re.fullmatch``, ``str.isprintable``): ``re.match``
with ``$`` also accepts a trailing newline, and pyiceberg strips it from namespace names,
which let ``tenant_id: "beta\\n"`` write into tenant ``beta``.

Table names, and the domain part of a namespace, come from stream, contract and domain
names through one rule, :func:`table_name` (documented in README.md, "Table names").
It never yields ``__``, so none of :data:`dativo.iceberg.naming.RESERVED_SUFFIXES` (the
target's own tables: dead letters, Markdown-KV, ...) can be produced from a name a tap
chooses. Where a contract's table lives is :func:`dativo.iceberg.naming.table_identifier`.
"""

from __future__ import annotations

import re
import unicodedata

from dativo.errors import ConfigError

REJECTED_STREAM_SUFFIX = "__rejected"
"""A tap's quarantine stream for ``<stream>``'s rows that contradict its SCHEMA
(tap-dativo-csv's ``on_invalid_value: reject``): raw text and reason, no contract."""

TENANT_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
"""A tenant id, matched with ``fullmatch``: it names the first namespace level."""
MAX_TABLE_NAME_BYTES = 200
"""Longest derived table name (UTF-8): with a reserved suffix it still fits the 255-byte
file-name limit of the warehouse folder and of SQL catalogs' name columns."""
_KEPT_CATEGORIES = frozenset("LNM")  # letters, digits and combining marks


def tenant_problem(value: object) -> str | None:
    """Why ``value`` is not a valid tenant id, or None when it is."""
    if isinstance(value, str) and TENANT_PATTERN.fullmatch(value):
        return None
    return (f"{value!r} is invalid; use lower-case letters, digits and underscores, "
            "starting with a letter, at most 63 characters (it names Iceberg namespaces)")


def check_tenant(key: str, value: object) -> str:
    """Return ``value`` if it is a valid tenant id.

    Raises:
        ConfigError: It is not; the message names ``key``.
    """
    problem = tenant_problem(value)
    if problem is not None:
        raise ConfigError(f"{key}: {problem}")
    return value  # type: ignore[return-value]  # tenant_problem proved it a str


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot name a stream, table, domain or column, or None when it can.

    Any printable text is allowed (Iceberg takes Unicode names); control and invisible
    characters (newline, tab, NUL, bidi overrides, zero-width joiners) are not, so two
    names that look alike are alike.
    """
    if not isinstance(value, str):
        return f"{value!r} is not a string"
    if not value:
        return "the name is empty"
    if not value.isprintable():
        return f"{value!r} contains a control or invisible character"
    return None


def rejected_parent(stream: str) -> str | None:
    """``orders`` for the stream ``orders__rejected`` (see
    :data:`REJECTED_STREAM_SUFFIX`), else None."""
    parent = stream.removesuffix(REJECTED_STREAM_SUFFIX)
    return parent if parent and parent != stream else None


def table_name(name: str) -> str:
    """The Iceberg table (or namespace level) name for a stream, contract or domain name.

    Letters, digits and combining marks are kept (any script, NFKC-normalised and
    lower-cased); every run of other characters, ``_`` included, becomes one ``_``, and
    leading and trailing ones are dropped: ``public-Orders`` and ``public_orders`` are
    ``public_orders``, ``日本語`` stays ``日本語``. The result never holds ``__``.

    Raises:
        ConfigError: ``name`` is not printable text, has no letter or digit, or yields
            a name longer than :data:`MAX_TABLE_NAME_BYTES`.
    """
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(f"{problem}; it cannot name an Iceberg table")
    text = unicodedata.normalize("NFKC", name).lower()
    words = "".join(ch if unicodedata.category(ch)[0] in _KEPT_CATEGORIES else " "
                     for ch in text).split()
    derived = "_".join(words)
    if not derived:
        raise ConfigError(f"{name!r} has no letter or digit, so it cannot name an Iceberg "
                          "table; rename it (a stream map's __alias__ renames a stream)")
    if len(derived.encode()) > MAX_TABLE_NAME_BYTES:
        raise ConfigError(f"{name[:40]!r}... yields a table name longer than "
                          f"{MAX_TABLE_NAME_BYTES} bytes; use a shorter name")
    return derived
