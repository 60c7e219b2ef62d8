"""Which BATCH files the target may read: ``batch_roots`` and ``batch_max_file_bytes``.

A BATCH message names files by URI, and the target opens them with its own rights:
its config file, other tenants' files, devices and FIFOs are all one manifest entry
away. So an entry is admitted (:meth:`BatchFilePolicy.admit`) only when

- it is a plain path, a local ``file://`` URI or an ``s3://`` URI (no other scheme);
- a local path, with ``..`` and every symlink resolved, lies inside a local root
  (relative roots and paths resolve against the target's working directory);
- an ``s3://`` URI lies inside a listed ``s3://`` prefix, segment by segment (so
  ``s3://bucket`` does not admit ``s3://bucket-evil``), with no ``.``, ``..`` or empty
  segment and no query, user or port (pyarrow would honour ``?endpoint_override=``);
- it is a regular file (no FIFO, device, directory, /proc or /sys file) of at most
  ``batch_max_file_bytes`` bytes.

Admission only stats; :mod:`batch_sources` opens the file without following symlinks
and checks the opened descriptor again, so a swap after admission cannot escape.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from dativo.errors import ConfigError, InternalError

DEFAULT_BATCH_ROOTS = ("./output/batches",)  # where the taps' batch_config writes by default
DEFAULT_BATCH_MAX_FILE_BYTES = 1024 * 1024 * 1024
SUPPORTED = "plain paths, file:// URIs and s3:// URIs"
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
_PSEUDO_FILE_SYSTEMS = ("/proc", "/sys", "/dev")
_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "device"),
          (stat.S_ISBLK, "device"), (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symlink"))


class RefusedFile(InternalError, ValueError):
    """Raised when a manifest entry is not admitted; the message continues the sentence
    "BATCH manifest file <uri> ..." and names the setting to change. Readers translate
    it into a :class:`CodecError` naming the stream and line; it is a ``ValueError`` for
    the readers that catch it with pyarrow's errors."""


@dataclass(frozen=True, slots=True)
class LocalFile:
    """An admitted local file: ``parts`` below the (resolved) ``root``."""

    uri: str  # as the manifest wrote it, for messages
    root: str
    parts: tuple[str, ...]
    max_bytes: int


@dataclass(frozen=True, slots=True)
class S3Object:
    """An admitted ``s3://`` object."""

    uri: str  # as the manifest wrote it, any user info redacted
    bucket: str
    key: str
    max_bytes: int


BatchSource = LocalFile | S3Object


@dataclass(frozen=True, slots=True)
class S3Prefix:
    """An ``s3://bucket/prefix`` root, as path segments."""

    bucket: str
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(("s3:/", self.bucket, *self.parts)) + "/"

    def admits(self, bucket: str, parts: tuple[str, ...]) -> bool:
        return bucket == self.bucket and parts[:len(self.parts)] == self.parts


@dataclass(frozen=True, slots=True)
class BatchFilePolicy:
    """The checked ``batch_roots`` and ``batch_max_file_bytes`` settings."""

    local_roots: tuple[str, ...]  # absolute (resolved when used: a root may be a symlink)
    s3_roots: tuple[S3Prefix, ...] = ()
    max_file_bytes: int = DEFAULT_BATCH_MAX_FILE_BYTES

    @classmethod
    def from_config(cls, roots: Any, max_file_bytes: Any) -> BatchFilePolicy:
        """Build the policy, raising :class:`ConfigError` that names the bad key."""
        if max_file_bytes is None:
            max_file_bytes = DEFAULT_BATCH_MAX_FILE_BYTES
        if isinstance(max_file_bytes, bool) or not isinstance(max_file_bytes, int) \
                or max_file_bytes <= 0:
            raise ConfigError(f"batch_max_file_bytes: {max_file_bytes!r} must be a positive "
                              "integer (bytes)")
        if roots is None:
            roots = DEFAULT_BATCH_ROOTS
        if not isinstance(roots, list | tuple) or not all(isinstance(r, str) for r in roots):
            raise ConfigError(f"batch_roots: must be a list of directory paths, file:// or "
                              f"s3:// URIs, got {roots!r}")
        local, s3 = [], []
        for root in roots:
            parsed = _root(root)
            (s3 if isinstance(parsed, S3Prefix) else local).append(parsed)
        return cls(tuple(local), tuple(s3), max_file_bytes)  # type: ignore[arg-type]

    def describe(self) -> str:
        roots = [*self.local_roots, *map(str, self.s3_roots)]
        return ", ".join(roots) if roots else "none configured"

    def admit(self, uri: str) -> BatchSource:
        """The file ``uri`` names, if a root admits it; only stats, never reads.

        Raises:
            RefusedFile: The scheme, place, type or size is not allowed.
            OSError: The local file cannot be stat'ed (missing, no permission).
        """
        try:
            parsed = urlsplit(uri)
        except ValueError as exc:  # e.g. an unclosed IPv6 bracket
            raise RefusedFile(f"is not a valid URI ({exc}); use {SUPPORTED} under "
                              "batch_roots") from exc
        if parsed.scheme == "s3":
            return self._admit_s3(uri, parsed.netloc, parsed)
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise RefusedFile(f"names the host {parsed.netloc!r}; file:// URIs must be "
                                  "local (file:///path) and under batch_roots")
            if parsed.query or parsed.fragment:
                raise RefusedFile("has a query or fragment; name the file as "
                                  "file:///path under batch_roots")
            return self._admit_local(uri, url2pathname(parsed.path))
        if len(parsed.scheme) > 1:  # one letter: a Windows drive
            raise RefusedFile(f"has the unsupported scheme '{parsed.scheme}'; the target "
                              f"reads BATCH files from {SUPPORTED} under batch_roots")
        return self._admit_local(uri, uri)

    def _admit_local(self, uri: str, path: str) -> LocalFile:
        try:
            real = os.path.realpath(os.path.abspath(path))
        except ValueError as exc:  # an embedded NUL
            raise RefusedFile(f"is not a valid path ({exc}); batch_roots") from exc
        for root in self.local_roots:
            root_real = os.path.realpath(root)
            if _inside(real, root_real):
                parts = Path(real).relative_to(root_real).parts
                source = LocalFile(uri, root_real, parts, self.max_file_bytes)
                check_stat(os.lstat(real), self.max_file_bytes)
                if not parts:
                    raise RefusedFile("is a directory, not a regular file; the target "
                                      "reads only regular files under batch_roots")
                return source
        where = f"resolves to {real}, which is" if real != path else "is"
        raise RefusedFile(
            f"{where} outside batch_roots ({self.describe()}); write BATCH files under one "
            "of them (the tap's batch_config.storage.root) or add their directory to the "
            "target's batch_roots setting")

    def _admit_s3(self, uri: str, netloc: str, parsed: Any) -> S3Object:
        problem = _s3_problem(netloc, parsed)
        if problem:
            raise RefusedFile(f"{problem}; name the object as s3://bucket/key under "
                              f"batch_roots ({self.describe()})")
        parts = tuple(unquote(parsed.path).split("/")[1:])
        if any(p in ("", ".", "..") for p in parts):
            raise RefusedFile("has an empty, '.' or '..' path segment; name the object as "
                              f"s3://bucket/key under batch_roots ({self.describe()})")
        if not any(root.admits(netloc, parts) for root in self.s3_roots):
            raise RefusedFile(
                f"is outside batch_roots ({self.describe()}); list its s3://bucket/prefix "
                "in the target's batch_roots setting, or write BATCH files under one of "
                "them (the tap's batch_config.storage.root)")
        return S3Object(shown_uri(uri), netloc, "/".join(parts), self.max_file_bytes)


def check_stat(info: os.stat_result, max_bytes: int) -> None:
    """Refuse anything but a regular file of at most ``max_bytes`` on a real file system.

    Raises:
        RefusedFile: Names the file's kind, or its size and ``batch_max_file_bytes``.
    """
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "special file")
        raise RefusedFile(f"is a {kind}, not a regular file; the target reads only "
                          "regular files under batch_roots")
    if info.st_dev in _pseudo_devices():
        raise RefusedFile("is on a pseudo file system (/proc, /sys), not a regular file; "
                          "the target reads only regular files under batch_roots")
    if info.st_size > max_bytes:
        raise too_big(f"{info.st_size} bytes", max_bytes)


def too_big(size: str, max_bytes: int) -> RefusedFile:
    """The refusal of a file of ``size`` (say "5000 bytes") over the cap."""
    return RefusedFile(f"is {size}, over batch_max_file_bytes ({max_bytes}); raise "
                       "batch_max_file_bytes or have the tap write smaller files "
                       "(batch_config.batch_size)")


def _pseudo_devices(paths: Iterable[str] = ("/proc", "/sys")) -> set[int]:
    devices = set()
    for path in paths:
        try:
            devices.add(os.stat(path).st_dev)
        except OSError:
            continue
    return devices


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _root(root: str) -> str | S3Prefix:
    """One ``batch_roots`` entry, checked: an absolute local path or an S3 prefix."""
    parsed = urlsplit(root)
    if parsed.scheme == "s3":
        problem = _s3_problem(parsed.netloc, parsed)
        if problem:
            raise ConfigError(f"batch_roots: {root!r} {problem}; use s3://bucket/prefix")
        parts = tuple(p for p in unquote(parsed.path).split("/") if p)
        if any(p in (".", "..") for p in parts):
            raise ConfigError(f"batch_roots: {root!r} has a '..' or '.' segment; use "
                              "s3://bucket/prefix")
        return S3Prefix(parsed.netloc, parts)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"batch_roots: {root!r} names a remote host; use file:///path")
        path = url2pathname(parsed.path)
    elif len(parsed.scheme) > 1:
        raise ConfigError(f"batch_roots: {root!r} has the unsupported scheme "
                          f"'{parsed.scheme}'; use {SUPPORTED}")
    else:
        path = root
    if not path.strip():
        raise ConfigError(f"batch_roots: {root!r} is not a directory path")
    absolute = os.path.abspath(path)  # relative roots: against the working directory
    if absolute == os.sep or any(_inside(absolute, p) for p in _PSEUDO_FILE_SYSTEMS):
        raise ConfigError(f"batch_roots: {root!r} would admit every file or a pseudo "
                          "file system; name the directory the taps write BATCH files to")
    return absolute


def _s3_problem(netloc: str, parsed: Any) -> str | None:
    if not netloc:
        return "names no bucket"
    if "@" in netloc or ":" in netloc:
        return "has a user or port, which could redirect the read"
    if parsed.query or parsed.fragment:
        return "has a query or fragment, which could redirect the read"
    if not _BUCKET.fullmatch(netloc):
        return f"names the invalid bucket {netloc!r}"
    return None


def shown_uri(uri: str) -> str:
    """``uri`` for messages: without any user info (a key and secret may sit there)."""
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:
        return uri
    if "@" not in netloc:
        return uri
    return uri.replace(netloc, "***@" + netloc.rsplit("@", 1)[1], 1)
