"""The error path of a spooled batch: which spooled lines DuckDB or pyarrow refused.

The hot path never decodes a RECORD line in Python. When the vectorised readers refuse
a batch, this module re-reads the spool line by line (error path only) and sorts each
refused line into one of two kinds:

- *fatal*: the line is not a Singer RECORD at all (not UTF-8, not JSON, no object
  ``record``, a message key given twice). The run stops with one line naming it.
- *rule* ``json``: the line is a RECORD, but its record is JSON that the readers (and
  most JSON consumers) refuse: a key given twice in one object, or a lone UTF-16
  surrogate escape (``"\\ud800"``). That record alone goes to the dead-letter table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

JSON_RULE = "json"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Screened:
    """A spool's refused lines: the first fatal one (row, reason), and the rows whose
    record breaks rule ``json``, with their reasons."""

    fatal: tuple[int, str] | None = None
    json_rows: dict[int, list[dict[str, str]]] = field(default_factory=dict)


def screen_spool(path: str) -> Screened:
    """Classify every line of the spool at ``path`` (0-based rows)."""
    json_rows: dict[int, list[dict[str, str]]] = {}
    with open(path, "rb") as spool:
        for row, raw in enumerate(spool):
            fatal, reasons = screen_line(raw)
            if fatal is not None:
                return Screened((row, fatal), json_rows)
            if reasons:
                json_rows[row] = reasons
    return Screened(None, json_rows)


def first_invalid_utf8(path: str) -> tuple[int, int] | None:
    """(row, byte offset in the line) of the first byte that is not UTF-8, if any."""
    with open(path, "rb") as spool:
        for row, raw in enumerate(spool):
            try:
                raw.decode()
            except UnicodeDecodeError as exc:
                return row, exc.start
    return None


def screen_line(raw: bytes) -> tuple[str | None, list[dict[str, str]]]:
    """(why the line is not a RECORD, or ``None``; its rule ``json`` reasons)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start} of the line", []
    duplicates: list[str | None] = []  # per object, bottom-up: the message comes last
    try:
        message = json.loads(text, object_pairs_hook=_pairs_hook(duplicates))
    except RecursionError:
        return "objects nested too deep to read", []
    except ValueError as exc:
        return f"not valid JSON: {exc}", []
    if not isinstance(message, dict) or not isinstance(message.get("record"), dict):
        return "no object 'record'", []
    if duplicates[-1] is not None:
        return f"the message has the key '{duplicates[-1]}' twice", []
    reasons = [{"field": _printable(key), "rule": JSON_RULE}
               for key in dict.fromkeys(k for k in duplicates[:-1] if k is not None)]
    reasons.extend({"field": key, "rule": JSON_RULE}
                   for key in _surrogate_columns(message["record"]))
    return None, reasons


def _pairs_hook(duplicates: list[str | None]) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            duplicates.append(None)
        else:
            seen: set[str] = set()
            duplicates.append(next(k for k, _ in pairs if k in seen or seen.add(k)))
        return obj

    return hook


def _surrogate_columns(record: dict[str, Any]) -> Iterator[str]:
    """Top-level keys of ``record`` whose key or value holds a lone surrogate."""
    for key, value in record.items():
        if _SURROGATE.search(key) or _has_surrogate(value):
            yield _printable(key)


def _printable(key: str) -> str:
    """``key`` storable as UTF-8 text: a lone surrogate becomes its escape."""
    return key.encode("utf-8", "backslashreplace").decode()


def _has_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
