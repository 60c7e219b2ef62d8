"""The *sectioned* dialect: YAML front matter, ``# title`` sections, ``key:: value``.

::

    ---
    doc_id: '42'
    source: crm
    ---

    # customer

    name:: Ann
    bio:: first line
      second line

Front matter is YAML (pyyaml's safe dialect, dates left as strings) holding ``doc_id``
and the document's metadata. Only level-1 headings start sections; every
``key:: value`` line belongs to one, and lines of any other shape are errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from dativo.markdown_kv.errors import MarkdownKVError
from dativo.markdown_kv.fields import FieldReader, render_fields
from dativo.markdown_kv.model import Document, Record, Section, check_label
from dativo.markdown_kv.values import ParseFloat

FRONT_MATTER = "---"
DOC_ID = "doc_id"
_YAML_BREAKS = frozenset("\x85\u2028\u2029")


class _Loader(yaml.SafeLoader):
    """Safe YAML without the timestamp resolver, so ``2024-01-05`` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def render_document(document: Document, columns: Sequence[str] | None = None) -> str:
    """The document's text; keys in each section in ``columns`` order, then the rest.

    Raises:
        MarkdownKVError: The id, a title, a key or a value cannot be rendered.
    """
    parts = []
    if document.doc_id is not None or document.metadata:
        parts.append(_front_matter(document.doc_id, document.metadata))
    seen: set[str] = set()
    for section in document.sections:
        title = check_label(section.title, "section title")
        if title in seen:
            raise MarkdownKVError(f"section title {title!r} is used twice; titles must be "
                                  "unique within a document")
        seen.add(title)
        lines = render_fields(section.fields, columns, ":: ")
        parts.append("\n".join([f"# {title}", "", *lines]) + "\n" if lines else f"# {title}\n")
    return "\n".join(parts)


def _front_matter(doc_id: str | None, metadata: Record) -> str:
    if DOC_ID in metadata:
        raise MarkdownKVError("metadata must not hold 'doc_id'; pass it as Document.doc_id")
    head: Record = {} if doc_id is None else {DOC_ID: check_label(doc_id, "doc_id")}
    data = {**head, **metadata}
    try:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=not _needs_escapes(data),
                              width=2**31 - 1)
    except yaml.YAMLError as exc:
        raise MarkdownKVError(f"front matter cannot be written as YAML ({exc}); use "
                              "strings, numbers, booleans, null, lists and dicts") from exc
    return f"{FRONT_MATTER}\n{text}{FRONT_MATTER}\n"


def _needs_escapes(value: Any) -> bool:
    """True when a string holds a character pyyaml would write raw but read back
    changed (NEL and the Unicode line separators are folded to spaces); then every
    non-ASCII character is written as an escape instead."""
    if isinstance(value, str):
        return not value.isprintable() or any(c in _YAML_BREAKS for c in value)
    if isinstance(value, dict):
        return any(_needs_escapes(k) or _needs_escapes(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_needs_escapes(v) for v in value)
    return False


def parse_document(text: str, *, source: str | None = None,
                   parse_float: ParseFloat = float) -> Document:
    """Parse one sectioned document.

    Raises:
        MarkdownKVError: The text is not valid; the error names the line.
    """
    try:
        return _parse(text, parse_float)
    except MarkdownKVError as exc:
        raise exc.located(source=source) from None


def _parse(text: str, parse_float: ParseFloat) -> Document:
    lines = [raw.removesuffix("\r") for raw in text.removeprefix("\ufeff").split("\n")]
    doc_id, metadata, start = _read_front_matter(lines, parse_float)
    sections: list[Section] = []
    titles: dict[str, int] = {}
    reader: FieldReader | None = None
    for number, line in enumerate(lines[start:], start=start + 1):
        if line.strip() == "":
            if reader is not None:
                reader.blank()
        elif line.startswith("  ") and reader is not None:
            reader.continuation(line, number)
        elif line.startswith("# "):
            title = check_label(line[2:], "section title", line=number)
            if title in titles:
                raise MarkdownKVError(f"section {title!r} was already started on line "
                                      f"{titles[title]}; merge the two sections",
                                      line=number)
            titles[title] = number
            reader = FieldReader(":: ", parse_float)
            sections.append(Section(title, reader.fields, number))
        elif line.startswith("#"):
            raise MarkdownKVError(f"only `# title` headings start sections, got "
                                  f"{line[:60]!r}", line=number)
        elif reader is None:
            raise MarkdownKVError(
                f"{line[:60]!r} comes before the first `# title` heading; put fields under "
                "a heading, and document-wide values into the front matter", line=number)
        else:
            reader.key_line(line, number)
    return Document(doc_id, metadata, tuple(sections))


def _read_front_matter(lines: list[str], parse_float: ParseFloat
                       ) -> tuple[str | None, Record, int]:
    """Return (doc_id, metadata, index of the first line after the front matter)."""
    if not lines or lines[0].rstrip() != FRONT_MATTER:
        return None, {}, 0
    for end in range(1, len(lines)):
        if lines[end].rstrip() in (FRONT_MATTER, "..."):
            break
    else:
        raise MarkdownKVError("the front matter is not closed; end it with a line `---`",
                              line=1)
    try:
        data = yaml.load("\n".join(lines[1:end]), Loader=_Loader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = 2 + mark.line if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise MarkdownKVError(f"front matter is not valid YAML: {reason}", line=at) from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise MarkdownKVError("front matter must be a YAML mapping with string keys", line=2)
    metadata = {k: _floats(v, parse_float) for k, v in data.items()}
    doc_id = metadata.pop(DOC_ID, None)
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if doc_id is not None and not isinstance(doc_id, str):
        raise MarkdownKVError(f"doc_id must be a string, got {doc_id!r}", line=2)
    return doc_id, metadata, end + 1


def _floats(value: Any, parse_float: ParseFloat) -> Any:
    """Apply ``parse_float`` to YAML floats too (via repr, which round-trips)."""
    if parse_float is float:
        return value
    if isinstance(value, float):
        return parse_float(repr(value))
    if isinstance(value, list):
        return [_floats(v, parse_float) for v in value]
    if isinstance(value, dict):
        return {k: _floats(v, parse_float) for k, v in value.items()}
    return value
