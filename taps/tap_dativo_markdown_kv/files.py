"""File access: globs, modification times, and decoding with file and line in errors."""

from __future__ import annotations

import datetime as dt
import glob
import os

from dativo.errors import ConfigError
from dativo.markdown_kv import MarkdownKVError

_UTF8_NAMES = {"utf-8", "utf8", "utf_8", "u8"}


def expand(pattern: str) -> list[str]:
    """The files a path or glob names, sorted so runs and state are deterministic.

    ``**`` matches across directories; directories themselves are ignored.
    """
    matches = glob.glob(pattern, recursive=True) if glob.has_magic(pattern) else [pattern]
    return sorted(m for m in matches if os.path.isfile(m))


def mtime(path: str) -> dt.datetime:
    """Modification time in UTC, truncated to microseconds so that it round-trips
    exactly through the ISO string kept in the state."""
    seconds, rest = divmod(os.stat(path).st_mtime_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    return stamp + dt.timedelta(microseconds=rest // 1000)


def iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC with microseconds, the shape singer-sdk gives datetimes in state."""
    return value.astimezone(dt.timezone.utc).isoformat("T", timespec="microseconds")


def read_text(path: str, encoding: str) -> str:
    """The whole file as text (a UTF-8 byte-order mark is dropped).

    Raises:
        ConfigError: The file cannot be opened.
        MarkdownKVError: The bytes are not valid in ``encoding``; names the line.
    """
    codec = "utf-8-sig" if encoding.lower() in _UTF8_NAMES else encoding
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
