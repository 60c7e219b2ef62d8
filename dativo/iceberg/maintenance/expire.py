"""``dativo maintain expire-snapshots``: forget old snapshots and delete what only they used.

Every commit adds a snapshot, and each keeps its data files alive for time travel, so a
table that is loaded every few seconds, upserted or compacted keeps every file it ever
had. Expiring uses pyiceberg's ``ExpireSnapshots``, which already refuses to expire the
head of a branch or a tag (so never the current snapshot); here the newest
``retain_last`` snapshots of the current history are kept as well.

Once the snapshots are gone, nothing can read them any more, so the files that only
they referenced (data files, manifests, manifest lists) are deleted right after the
commit. Doing it here rather than leaving it to ``remove-orphans`` is safe because the
set is computed from the table's metadata *after* the commit, which includes any
snapshot a concurrent writer committed meanwhile, and because a writer only builds on
the current snapshot, which is never expired. It is also the only way the metadata
files go: ``remove-orphans`` only looks at ``data/``. What cannot be deleted (e.g. a
storage error) is reported and left for ``remove-orphans`` (data files only).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from pyiceberg.io import FileIO
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot, ancestors_of

LOGGER = logging.getLogger(__name__)


@dataclass
class ExpireReport:
    """What expiring did to one table (or, in a dry run, would do)."""

    table: str
    expired: list[int] = field(default_factory=list)
    remaining: int = 0
    data_files: int = 0
    data_bytes: int = 0
    metadata_files: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass
class _References:
    data: dict[str, int] = field(default_factory=dict)  # path -> size in bytes
    manifests: set[str] = field(default_factory=set)
    manifest_lists: set[str] = field(default_factory=set)


def expire_snapshots(table: Table, *, older_than: timedelta, retain_last: int = 1,
                     dry_run: bool = False) -> ExpireReport:
    """Expire snapshots committed more than ``older_than`` ago, except the newest
    ``retain_last`` of the current history and any branch or tag head, then delete the
    files no remaining snapshot references.

    Raises:
        ValueError: ``retain_last`` is below 1 (the current snapshot is always kept).
    """
    if retain_last < 1:
        raise ValueError("retain_last must be at least 1")
    metadata = table.metadata
    report = ExpireReport(".".join(table.name()), remaining=len(metadata.snapshots))
    cutoff_ms = int((datetime.now(timezone.utc) - older_than).timestamp() * 1000)
    kept = {s.snapshot_id for s in
            itertools.islice(ancestors_of(metadata.current_snapshot(), metadata), retain_last)}
    expire = table.maintenance.expire_snapshots()
    chosen: list[Snapshot] = []
    for snapshot in metadata.snapshots:
        if snapshot.timestamp_ms >= cutoff_ms or snapshot.snapshot_id in kept:
            continue
        try:
            expire.by_id(snapshot.snapshot_id)
        except ValueError:
            continue  # the head of a branch or a tag: pyiceberg protects it
        chosen.append(snapshot)
    if not chosen:
        return report
    report.expired = [s.snapshot_id for s in chosen]
    chosen_ids = set(report.expired)
    if dry_run:
        remaining = [s for s in metadata.snapshots if s.snapshot_id not in chosen_ids]
    else:
        expire.commit()  # refreshes table.metadata to the catalog's, concurrent commits too
        remaining = list(table.metadata.snapshots)
    report.remaining = len(remaining)
    unused = _unused_files(table.io, chosen, remaining)
    report.data_files, report.data_bytes = len(unused.data), sum(unused.data.values())
    report.metadata_files = len(unused.manifests) + len(unused.manifest_lists)
    if not dry_run:
        report.failed = _delete(table.io, [*unused.data, *unused.manifests,
                                           *unused.manifest_lists])
    return report


def _unused_files(io: FileIO, expired: list[Snapshot], remaining: list[Snapshot]
                  ) -> _References:
    """Files the ``expired`` snapshots referenced and no ``remaining`` snapshot does.

    A data file counts as referenced by a remaining snapshot only while live in it; an
    expired snapshot's manifests also name the files it removed, which go as well
    when nothing remaining holds them.
    """
    gone = _references(io, expired, live_only=False)
    kept = _references(io, remaining, live_only=True)
    return _References(
        data={p: size for p, size in gone.data.items() if p not in kept.data},
        manifests=gone.manifests - kept.manifests,
        manifest_lists=gone.manifest_lists - kept.manifest_lists,
    )


def _references(io: FileIO, snapshots: Iterable[Snapshot], *, live_only: bool) -> _References:
    found = _References()
    for snapshot in snapshots:
        found.manifest_lists.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            if manifest.manifest_path in found.manifests:
                continue  # shared by an earlier snapshot: its entries are already in
            found.manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=live_only):
                found.data[entry.data_file.file_path] = entry.data_file.file_size_in_bytes
    return found


def _delete(io: FileIO, paths: list[str]) -> list[str]:
    """Delete ``paths``; return those that could not be deleted."""
    failed = []
    for path in paths:
        try:
            io.delete(path)
        except FileNotFoundError:
            continue  # already gone (e.g. removed by remove-orphans)
        except OSError as exc:
            LOGGER.warning("Could not delete %s: %s", path, exc)
            failed.append(path)
    return failed
