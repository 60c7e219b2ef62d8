"""File access: decoding with file and line in errors (globs and mtimes: dativo.file_taps)."""

from __future__ import annotations

from dativo.errors import ConfigError
from dativo.file_taps import text_codec
from dativo.markdown_kv import MarkdownKVError


def read_text(path: str, encoding: str) -> str:
    """The whole file as text (a UTF-8 byte-order mark is dropped).

    Raises:
        ConfigError: The file cannot be opened.
        MarkdownKVError: The bytes are not valid in ``encoding``; names the line.
    """
    codec = text_codec(encoding)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from exc
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MarkdownKVError(f"byte offset {exc.start} is not valid {encoding} "
                              f"({exc.reason}); set the entry's `encoding` to the file's "
                              "real encoding, or re-save the file as UTF-8",
                              line=line, source=path) from exc
