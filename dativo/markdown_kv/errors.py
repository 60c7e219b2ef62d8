"""The codec's one error type, a :class:`~dativo.errors.CodecError`.

::

    DativoError
    └── CodecError
        └── MarkdownKVError     text that is not valid Markdown-KV, or a value/key/id
                                that cannot be rendered
"""

from __future__ import annotations

from dativo.errors import CodecError


class MarkdownKVError(CodecError):
    """Raised when Markdown-KV cannot be parsed or a record cannot be rendered.

    Attributes:
        line: 1-based line in the text (None for render errors).
        key: The key whose line or value is at fault, when there is one.
        source: The file (or other name) the caller gave the text, when known.
        reason: The message without the location prefix.
    """

    def __init__(self, reason: str, *, line: int | None = None, key: str | None = None,
                 source: str | None = None) -> None:
        self.key = key
        self.source = source
        self.reason = reason
        where = f"key {key!r}: " if key is not None else ""
        super().__init__(where + reason, line=line)
        if source is not None:
            self.args = (f"{source}: {self.args[0]}",)

    def located(self, *, line: int | None = None, source: str | None = None
                ) -> MarkdownKVError:
        """A copy with the line and source filled in where they were unknown."""
        return MarkdownKVError(self.reason, line=self.line if self.line is not None else line,
                               key=self.key, source=self.source or source)
