"""The *record blocks* dialect: ``## Record <id>`` then a fenced block of ``key: value``.

::

    # orders                  <- optional level-1 title lines, ignored when parsing

    ## Record 1

    ```
    id: 1
    note: first line
      second line
    ```

The fence is one backtick longer than the longest run of backticks inside the block
(at least three), so values holding ````` ``` ````` cannot close it early. Outside
blocks only blank lines and ``# title`` lines are allowed; anything else is an error,
so a mistyped heading never silently drops a record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dativo.markdown_kv.errors import MarkdownKVError
from dativo.markdown_kv.fields import FieldReader, render_fields
from dativo.markdown_kv.model import RecordBlock, check_label
from dativo.markdown_kv.values import ParseFloat

HEADING = "## Record "
_BACKTICKS = re.compile(r"`+")
_OPEN_FENCE = re.compile(r"(`{3,})[^`]*")


def render_record(doc_id: str, record: Mapping[str, Any],
                  columns: Sequence[str] | None = None) -> str:
    """One block, ending in a newline; keys in ``columns`` order, then the rest.

    Raises:
        MarkdownKVError: The id, a key or a value cannot be rendered unambiguously.
    """
    check_label(doc_id, "record id")
    body = "\n".join(render_fields(record, columns, ": "))
    longest = max(map(len, _BACKTICKS.findall(body)), default=0) if "`" in body else 0
    fence = "`" * max(3, longest + 1)
    inner = f"{body}\n" if body else ""
    return f"{HEADING}{doc_id}\n\n{fence}\n{inner}{fence}\n"


def render_records(blocks: Iterable[tuple[str, Mapping[str, Any]]],
                   columns: Sequence[str] | None = None, *, title: str | None = None) -> str:
    """A document of blocks separated by blank lines, under an optional ``# title``."""
    parts = [] if title is None else [f"# {check_label(title, 'title')}\n"]
    parts.extend(render_record(doc_id, record, columns) for doc_id, record in blocks)
    return "\n".join(parts)


def parse_records(text: str, *, source: str | None = None,
                  parse_float: ParseFloat = float) -> list[RecordBlock]:
    """Every block of a record-blocks document, in order.

    Args:
        text: The document.
        source: Named in error messages (a file path).
        parse_float: Builds non-integer numbers (``decimal.Decimal`` keeps digits).

    Raises:
        MarkdownKVError: The text is not valid; the error names the line.
    """
    try:
        return _Parser(parse_float).parse(text)
    except MarkdownKVError as exc:
        raise exc.located(source=source) from None


class _Parser:
    def __init__(self, parse_float: ParseFloat) -> None:
        self.parse_float = parse_float
        self.blocks: list[RecordBlock] = []

    def parse(self, text: str) -> list[RecordBlock]:
        lines = iter(enumerate(text.removeprefix("\ufeff").split("\n"), start=1))
        for number, raw in lines:
            line = raw.removesuffix("\r")
            if line.strip() == "" or (line.startswith("# ") and not line.startswith("##")):
                continue
            if not line.startswith(HEADING):
                raise MarkdownKVError(
                    f"expected `{HEADING}<id>`, a `# title` or a blank line outside record "
                    f"blocks, got {line[:60]!r}", line=number)
            doc_id = check_label(line[len(HEADING):], "record id", line=number)
            self._block(doc_id, number, lines)
        return self.blocks

    def _block(self, doc_id: str, heading: int, lines: Iterable[tuple[int, str]]) -> None:
        fence = None
        for number, raw in lines:
            line = raw.removesuffix("\r")
            if fence is None:
                if line.strip() == "":
                    continue
                match = _OPEN_FENCE.fullmatch(line)
                if match is None:
                    raise MarkdownKVError(
                        f"record {doc_id!r}: expected a ``` fence opening the block after "
                        f"line {heading}, got {line[:60]!r}", line=number)
                fence, reader, opened = match.group(1), FieldReader(": ", self.parse_float), number
                continue
            if _closes(line, fence):
                self.blocks.append(RecordBlock(doc_id, reader.fields, heading))
                return
            if line.startswith(HEADING):
                raise MarkdownKVError(
                    f"record {doc_id!r}: its block (fence opened on line {opened}) is not "
                    f"closed before the next record; add a line {fence} before it",
                    line=number)
            if line.strip() == "":
                reader.blank()
            elif reader.is_continuation(line):
                reader.continuation(line, number)
            else:
                reader.key_line(line, number)
        where = f"the fence opened on line {opened}" if fence else "no ``` fence follows"
        raise MarkdownKVError(f"record {doc_id!r} ends without its block: {where}; close the "
                              "block with a line of backticks as long as the opening one",
                              line=heading)


def _closes(line: str, fence: str) -> bool:
    """CommonMark: up to 3 spaces, at least as many backticks, then only spaces."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return False
    body = stripped.rstrip(" ")
    return len(body) >= len(fence) and body == "`" * len(body)
