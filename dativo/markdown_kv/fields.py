"""``key<sep>value`` lines and their continuation lines, for both dialects.

The record-blocks dialect separates with ``": "``, the sectioned one with ``":: "``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dativo.markdown_kv.errors import MarkdownKVError
from dativo.markdown_kv.model import Record, check_key, ordered
from dativo.markdown_kv.values import INDENT, ParseFloat, decode_value, encode_value


def render_fields(record: Mapping[str, Any], columns: Sequence[str] | None,
                  sep: str) -> list[str]:
    """One ``key<sep>value`` line per item (continuations joined in with ``\\n``).

    Raises:
        MarkdownKVError: A key breaks the key rule or a value has no JSON form.
    """
    lines = []
    for key, value in ordered(record, columns):
        check_key(key)
        lines.append(f"{key}{sep}{encode_value(value, key=key)}")
    return lines


class FieldReader:
    """Collects the fields of one block or section, line by line."""

    def __init__(self, sep: str, parse_float: ParseFloat) -> None:
        self.sep = sep
        self.bare_sep = sep.rstrip()
        self.parse_float = parse_float
        self.fields: Record = {}
        self._open: str | None = None  # key whose bare string may continue
        self._empty = False  # the open value was written as a bare `key:` (hand-written)

    def is_continuation(self, text: str) -> bool:
        return text.startswith(INDENT)

    def continuation(self, text: str, line: int) -> None:
        """Append an indented line to the previous value.

        Raises:
            MarkdownKVError: No bare string value precedes the line.
        """
        if self._open is None:
            raise MarkdownKVError(
                "indented line does not continue a text value (only a plain text value "
                "may continue on lines indented by two spaces); un-indent it or write "
                "the value as a JSON string", line=line)
        if self._empty:  # `key:` then indented lines: the lines are the value
            self.fields[self._open] = text[len(INDENT):]
            self._empty = False
        else:
            self.fields[self._open] += "\n" + text[len(INDENT):]

    def blank(self) -> None:
        """A blank line ends a value's continuation lines."""
        self._open = None

    def key_line(self, text: str, line: int) -> None:
        """Read ``key<sep>value``.

        Raises:
            MarkdownKVError: The separator is missing, the key is invalid or repeated,
                or the value starts like JSON but is not valid JSON.
        """
        at = text.find(self.sep)
        if at >= 0:
            key, token = text[:at], text[at + len(self.sep):]
        elif text.endswith(self.bare_sep):
            key, token = text[: -len(self.bare_sep)], ""
        else:
            raise MarkdownKVError(
                f"expected a `key{self.sep}value` line, got {text[:60]!r}", line=line)
        check_key(key, line=line)
        if key in self.fields:
            raise MarkdownKVError("the key appears twice in the same block; keep one",
                                  key=key, line=line)
        try:
            value, continuable = decode_value(token, parse_float=self.parse_float)
        except ValueError as exc:
            raise MarkdownKVError(
                f"value {token[:60]!r} starts like JSON but is not valid JSON ({exc}); "
                "fix the JSON, or write text that starts with \", [ or { as a JSON "
                "string", key=key, line=line) from None
        self.fields[key] = value
        self._empty = token == ""
        self._open = key if continuable or self._empty else None
