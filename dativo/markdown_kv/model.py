"""What the codec renders and parses: record blocks, documents, KV rows; plus the rules
for keys, ids and titles that keep every line unambiguous in both dialects.

Key rule: a key is a non-empty string of printable characters without leading or
trailing whitespace that does not start with ``#`` and has no ``:`` followed by a space
or another ``:``, and does not end with ``:`` (``a:b`` and ``http://x`` are fine).
A record id or section title is non-empty, printable, without leading or trailing
whitespace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dativo.markdown_kv.errors import MarkdownKVError

Record = dict[str, Any]

_VALID_KEYS: set[str] = set()
_MAX_CACHED_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class RecordBlock:
    """One ``## Record <id>`` block: the id and the record's key/values in order.

    ``line`` is where the heading was found when parsed (not part of equality).
    """

    doc_id: str
    record: Record
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Section:
    """One ``# title`` section of a sectioned document and its ``key:: value`` fields."""

    title: str
    fields: Record
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Document:
    """A sectioned document: ``doc_id`` and ``metadata`` live in the YAML front matter
    (front matter is omitted when both are empty), then the sections in order."""

    doc_id: str | None
    metadata: Record
    sections: tuple[Section, ...]


@dataclass(frozen=True, slots=True)
class KVRow:
    """One key/value of a document, the ``row_per_kv`` shape.

    ``section`` is the section title; ``""`` for front-matter keys and for record blocks
    (which have no sections). ``value`` is a string value itself, any other value as
    compact JSON, and None for null; ``value_json`` is always the compact JSON.
    ``ord`` counts the document's keys from 0 in document order.
    """

    doc_id: str
    section: str
    key: str
    value: str | None
    value_json: str
    ord: int


def key_problem(key: Any) -> str | None:
    """Why ``key`` breaks the key rule, or None when it is a valid key."""
    if not isinstance(key, str):
        return f"key {key!r} is not a string"
    if key == "":
        return "the key is empty"
    if not key.isprintable() or key != key.strip():
        return "a key must be printable text without line breaks or surrounding spaces"
    if key.startswith("#"):
        return "a key must not start with '#' (that is a heading)"
    if ": " in key or "::" in key or key.endswith(":"):
        return "a key must not contain ': ' or '::' or end with ':' (the separators)"
    return None


def check_key(key: Any, *, line: int | None = None) -> str:
    """Return ``key`` when valid (cached: records repeat their keys).

    Raises:
        MarkdownKVError: The key breaks the key rule.
    """
    if key in _VALID_KEYS:
        return key
    problem = key_problem(key)
    if problem is not None:
        raise MarkdownKVError(f"{problem}; rename the key", key=str(key), line=line)
    if len(_VALID_KEYS) < _MAX_CACHED_KEYS:
        _VALID_KEYS.add(key)
    return key


def check_label(label: Any, what: str, *, line: int | None = None) -> str:
    """Check a record id or a section title (one line of printable text)."""
    if not isinstance(label, str) or label == "" or not label.isprintable() \
            or label != label.strip():
        raise MarkdownKVError(
            f"{what} {label!r} must be non-empty printable text on one line without "
            "surrounding spaces", line=line)
    return label


def ordered(record: Mapping[str, Any], columns: Sequence[str] | None
            ) -> Iterator[tuple[str, Any]]:
    """Items of ``record`` in ``columns`` order, then any other keys in record order.

    A column missing from the record is skipped (absent stays absent, unlike null).
    """
    if not columns:
        yield from record.items()
        return
    for name in columns:
        if name in record:
            yield name, record[name]
    if any(name not in record for name in columns) or len(record) > len(columns):
        listed = set(columns)
        for name, value in record.items():
            if name not in listed:
                yield name, value
