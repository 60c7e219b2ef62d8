"""What the taps that read local files (CSV, Markdown-KV) share.

Both read the files a ``files`` entry's path or glob names, one stream per entry and
one state partition per file, incremental by the file's modification time. Keeping
that here means a fix to the bookmark logic or to the ``files`` checks reaches both
taps; each tap keeps only how it turns one file into records.

Like :mod:`dativo.tap_runtime`, this module is for taps and so imports singer-sdk.
"""

from __future__ import annotations

import abc
import codecs
import datetime as dt
import glob
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel

from dativo.errors import ConfigError
from dativo.file_columns import SOURCE_FILE, SOURCE_LINENO, SOURCE_MTIME
from dativo.tap_runtime import ObservedTap

if TYPE_CHECKING:
    import logging

    from singer_sdk.helpers.types import Context


_UTF8_NAMES = {"utf-8", "utf8", "utf_8", "u8"}

LineRecord = tuple[int, dict[str, Any]]
"""(1-based line the record starts at, record without the _sdc_source columns)."""


# --- files ------------------------------------------------------------------------------


def expand(pattern: str) -> list[str]:
    """Return the files a path or glob names, sorted so runs and state are deterministic.

    ``**`` matches across directories. Directories are ignored; a pattern that matches
    nothing returns an empty list (the caller decides whether that is an error).
    """
    matches = glob.glob(pattern, recursive=True) if glob.has_magic(pattern) else [pattern]
    return sorted(m for m in matches if os.path.isfile(m))


def mtime(path: str) -> dt.datetime:
    """Modification time in UTC, truncated to microseconds.

    Truncation makes the value round-trip exactly through the ISO string kept in the
    state, so an unchanged file compares equal to its bookmark.
    """
    seconds, rest = divmod(os.stat(path).st_mtime_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    return stamp + dt.timedelta(microseconds=rest // 1000)


def iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC with microseconds, the shape singer-sdk gives datetimes in state."""
    return value.astimezone(dt.timezone.utc).isoformat("T", timespec="microseconds")


def text_codec(encoding: str) -> str:
    """Read UTF-8 as ``utf-8-sig`` so a byte-order mark never ends up in the data."""
    return "utf-8-sig" if encoding.lower() in _UTF8_NAMES else encoding


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileEntry:
    """The part of a ``files`` entry every file tap has; each tap subclasses it."""

    index: int
    entity: str
    path: str
    allow_empty: bool = field(default=False, kw_only=True)
    """A path that matches no file is an error unless this is set (landing zones)."""

    @property
    def where(self) -> str:
        """The config key of this entry, for error messages."""
        return f"files[{self.index}]"


EntryT = TypeVar("EntryT", bound=FileEntry)


def parse_file_entries(config: Mapping[str, Any], schema: Mapping[str, Any],
                       parse_entry: Callable[[int, Mapping[str, Any]], EntryT]
                       ) -> Iterator[EntryT]:
    """Yield every ``files`` entry, parsed by the tap's ``parse_entry`` and checked.

    ``config`` is the validated config: singer-sdk has checked each entry against the
    tap's config ``schema`` (its :func:`files_setting`) and filled in the defaults of
    missing keys. The schema lets an optional key be null, which means its default too,
    so ``parse_entry`` gets every key that has a default. Lazy, so a tap that finishes
    each entry (e.g. looks up its contract) reports the first bad entry first.

    Raises:
        ConfigError: ``entity`` or ``path`` is blank, two entries share an entity, or
            ``parse_entry`` rejects an entry; the message names the key.
    """
    defaults = {key: prop["default"] for key, prop in
                schema["properties"]["files"]["items"]["properties"].items()
                if "default" in prop}
    seen: set[str] = set()
    for index, given in enumerate(config["files"]):
        entry = {**given, **{key: default for key, default in defaults.items()
                             if given.get(key) is None}}
        for key in ("entity", "path"):
            if not entry[key].strip():
                raise ConfigError(f"files[{index}].{key}: required and must not be empty")
        item = replace(parse_entry(index, entry), allow_empty=entry["allow_empty"])
        if item.entity in seen:
            raise ConfigError(f"{item.where}.entity: stream name {item.entity!r} is used by "
                              "another entry; give each entry its own entity")
        seen.add(item.entity)
        yield item


def check_encoding(where: str, encoding: str) -> str:
    """Return ``encoding`` if Python knows it, so a typo fails at startup, not mid-file.

    Raises:
        ConfigError: Unknown codec; the message names ``<where>.encoding``.
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"{where}.encoding: unknown encoding {encoding!r} "
                          "(use a Python codec name such as utf-8, latin-1, cp1252)") from None
    return encoding


def files_setting(*entry: th.Property, streams: str, keys: str) -> th.Property:
    """The ``files`` config property: ``entity`` and ``path``, then the tap's own keys.

    Args:
        entry: The tap-specific properties of one entry, in the order to show them.
        streams: What the streams read, for the description (e.g. ``"CSV"``).
        keys: The description's summary of ``entry``, so a user reading only the
            setting's description (as Meltano shows it) learns every key of an entry.
    """
    return th.Property(
        "files",
        th.ArrayType(th.ObjectType(
            th.Property("entity", th.StringType, required=True,
                        description="Stream name; also the table the target lands the rows "
                                    "in."),
            th.Property("path", th.StringType, required=True,
                        description="File path or glob (`**` matches directories), relative "
                                    "to the working directory. Each matching file has its "
                                    "own bookmark."),
            th.Property("allow_empty", th.BooleanType, default=False,
                        description="Let `path` match no file (a landing zone that is "
                                    "sometimes empty): the stream then emits no records. "
                                    "Without it, a path or glob that matches nothing is a "
                                    "config error (exit 2), so a typo never looks like an "
                                    "empty source."),
            *entry,
            additional_properties=False,
        )),
        required=True,
        description=f"The {streams} streams to read, one entry per stream: entity (stream "
                    "and table name), path (file or glob; `**` matches directories), "
                    f"allow_empty (let the path match no file), {keys}",
    )


# --- tap and streams ------------------------------------------------------------------


class FileTap(ObservedTap, Tap):
    """Base of the file taps: one stream per ``files`` entry (see :func:`files_setting`)."""

    # The catalog depends on the config and the files (headers, contracts, inferred
    # schemas), so --discover must read and validate the config too.
    dynamic_catalog = True


def source_properties(*, record: str, line: str) -> list[th.Property]:
    """The schema of :data:`~dativo.file_columns.SOURCE_COLUMNS`.

    Args:
        record: What one record is, for the descriptions (``"row"``, ``"record"``).
        line: The description of the line number column.
    """
    return [
        th.Property(SOURCE_FILE, th.StringType, required=True,
                    description=f"Path of the file the {record} was read from."),
        th.Property(SOURCE_LINENO, th.IntegerType, required=True, description=line),
        th.Property(SOURCE_MTIME, th.DateTimeType, required=True,
                    description="Modification time of the file (UTC) when it was read."),
    ]


def matching_files(logger: logging.Logger, entry: FileEntry) -> list[str]:
    """The files of ``entry`` at discovery.

    Raises:
        ConfigError: None matches and the entry does not set ``allow_empty`` (a typo in
            the path would otherwise look like an empty source).
    """
    paths = expand(entry.path)
    if paths:
        return paths
    if entry.allow_empty:
        logger.info("%s.path: no file matches %r (allow_empty is set); stream '%s' emits "
                    "no records", entry.where, entry.path, entry.entity)
        return paths
    relative = "" if os.path.isabs(entry.path) else f" under {os.getcwd()}"
    raise ConfigError(
        f"{entry.where}.path: no file matches {entry.path!r}{relative} (stream "
        f"'{entry.entity}'); fix the path, or set {entry.where}.allow_empty: true if this "
        "landing zone may be empty")


class FileStream(Stream):
    """A stream over the files one ``files`` entry names, incremental per file.

    State is kept per file (partition ``{"_sdc_source_file": path}``) with the file's
    modification time as the replication key: a file whose mtime is not newer than its
    bookmark is skipped, so a rerun re-reads only new or changed files.

    ``is_sorted`` stays False on purpose: singer-sdk then holds the bookmark in progress
    markers and only promotes it when the whole file has been read, so a run that dies
    half-way through a file re-reads that file instead of skipping its tail.

    Subclasses set ``paths`` (see :func:`matching_files`) before ``Stream.__init__`` and
    implement :meth:`records_from_file`.
    """

    replication_key = SOURCE_MTIME
    # singer-sdk's default conformance rewrites values to match the schema; e.g. any
    # non-empty string in a boolean column becomes True. The taps' values are already
    # JSON-ready, and a value that does not fit its type must reach the target unchanged
    # (to be rejected into its dead-letter table), so conformance is turned off.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    paths: list[str]

    @abc.abstractmethod
    def records_from_file(self, path: str) -> Iterable[LineRecord]:
        """Yield ``(line, record)`` for each record of the file at ``path``."""

    @property
    def partitions(self) -> list[dict] | None:
        """One partition per file, so each file has its own mtime bookmark."""
        return [{SOURCE_FILE: path} for path in self.paths]

    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        """No signpost, so a bookmark is always the file's own mtime.

        singer-sdk's signpost (the run's start time) caps bookmarks; a file whose mtime
        lies in the future (copied from a host with a fast clock) would then be re-read,
        and re-loaded, on every run. (0.54.9 writes the signpost only at stream level, so
        partition bookmarks are not capped today; this keeps it that way.) The cap is not
        needed for safety: the mtime is taken before the file is read, so a file changed
        during the run is newer than its bookmark and is read again next time.
        """
        return None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield the records of the partition's file, with the :data:`SOURCE_COLUMNS`,
        unless the file is unchanged since the last run."""
        found = self.file_to_read(context)
        if found is None:
            return
        path, stamp = found
        for line, record in self.records_from_file(path):
            record[SOURCE_FILE] = path
            record[SOURCE_LINENO] = line
            record[SOURCE_MTIME] = stamp
            yield record

    def file_to_read(self, context: Context | None) -> tuple[str, str] | None:
        """The partition's file and its mtime (ISO), or None when it is unchanged since
        the last run or was removed after discovery (both logged)."""
        if not context:
            return None
        path = context[SOURCE_FILE]
        try:
            # Taken before reading, so a file changed while we read it looks newer
            # than its bookmark next time and is read again.
            modified = mtime(path)
        except FileNotFoundError:
            self.logger.warning("skipping %s: it was removed after discovery", path)
            return None
        stamp = iso(modified)
        if self._unchanged(context, modified):
            self.logger.info("skipping unchanged file %s (modified %s)", path, stamp)
            return None
        return path, stamp

    def _unchanged(self, context: Context, modified: dt.datetime) -> bool:
        """True when the file is not newer than its bookmark.

        The bookmark only moves forward: records are emitted only for a file newer than
        its bookmark, so the value singer-sdk promotes is always larger. A state merged
        from several runs therefore never re-reads a loaded file; the price is that a
        file replaced by an *older* copy (``cp -p``, ``rsync -t``) counts as unchanged:
        ``touch`` it to load it again.

        Raises:
            ConfigError: The bookmark in the state is not an ISO timestamp.
        """
        bookmark = self.get_starting_replication_key_value(context)
        if not bookmark:
            return False
        try:
            seen = dt.datetime.fromisoformat(str(bookmark))
        except ValueError:
            raise ConfigError(
                f"state: bookmark {bookmark!r} for {context[SOURCE_FILE]} is not an ISO "
                "timestamp; remove that partition from the state to re-read the file"
            ) from None
        return modified <= (seen if seen.tzinfo else seen.replace(tzinfo=dt.timezone.utc))
