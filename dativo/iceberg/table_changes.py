"""What one commit stages in one table, and how a commit that lost a race is redone.

An upsert, an ``overwrite`` or an ACTIVATE_VERSION is *planned* against the table as it
was read: which keys exist, so which files a copy-on-write rewrite replaces. Such a plan
is only right on the snapshot it was read from. Each of its snapshots asserts that
snapshot (pyiceberg's ``AssertRefSnapshotId`` on the branch), so any concurrent commit
makes it fail, and it is then redone here, never blindly: pyiceberg's own retry would
re-apply the snapshots on the new head as they are, and an upsert batch whose keys were
new when it was planned (a plain append) would then land a second row for every key the
other writer added meanwhile.

After a conflict, :meth:`TableChanges.still_valid` reads what the commits in between did
(the manifests they wrote): when they removed none of the files the plan replaces and
added no row with one of its keys, planning again would give the same files, so the same
snapshots are staged again on the new head (:meth:`TableChanges.restage`); otherwise the
caller plans again from scratch.
Either way every key keeps one row, the one of the writer whose commit came last.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, TableProperties, Transaction
from pyiceberg.utils.properties import property_as_int

from dativo.iceberg.rewrites import (
    RowChange,
    changes_since,
    drop_older_versions,
    holds_any_key,
    mark_older_versions_deleted,
    rewrite_rows,
    without_keys,
)
from dativo.iceberg.staging import CommitMode, TableChange, VersionActivation

LOGGER = logging.getLogger(__name__)


class PlannedTransaction(Transaction):
    """A transaction whose snapshots were planned against the table as it was read.

    pyiceberg's in-transaction retry re-applies staged snapshots on the refreshed table,
    validating only what an Iceberg operation knows (files deleted, or added in a
    range), not our keys; here it is refused, so that the conflict reaches the caller,
    which stages the plan again (:meth:`TableChanges.still_valid`) or plans it again.
    """

    def _rebuild_snapshot_updates(self) -> None:
        """Called by pyiceberg's retry to re-apply the staged snapshots after a conflict:
        refused (pyiceberg then deletes this attempt's manifests and raises)."""
        raise CommitFailedException(
            f"{'.'.join(self._table.name())} changed since this commit was planned")


def replay_waits(table: Table) -> Iterator[float]:
    """Seconds to wait before each re-staging of a plan after a conflict: pyiceberg's
    ``commit.retry.*`` table properties (num-retries, min- and max-wait-ms), which
    govern the same re-application of a plain append, with its exponential backoff."""
    props = table.metadata.properties
    retries = property_as_int(props, TableProperties.COMMIT_NUM_RETRIES,
                              TableProperties.COMMIT_NUM_RETRIES_DEFAULT) or 0
    low = property_as_int(props, TableProperties.COMMIT_MIN_RETRY_WAIT_MS,
                          TableProperties.COMMIT_MIN_RETRY_WAIT_MS_DEFAULT) or 0
    high = property_as_int(props, TableProperties.COMMIT_MAX_RETRY_WAIT_MS,
                           TableProperties.COMMIT_MAX_RETRY_WAIT_MS_DEFAULT) or 0
    for replay in range(max(0, retries)):
        yield max(0, min(low * 2**replay, high)) * random.uniform(1.0, 1.1) / 1000


@dataclass(frozen=True)
class StagedSnapshot:
    """One staged snapshot: the data files it removes and adds."""

    removed: list[DataFile]
    added: list[DataFile]


class TableChanges:
    """Plans and stages one commit's changes of one table, in message order, keeping
    the plan (each snapshot's files, the keys an upsert replaced) for a re-staging."""

    def __init__(self, table: Table, properties: Mapping[str, str], mode: CommitMode
                 ) -> None:
        self.table, self.mode = table, mode
        self.properties = dict(properties)
        self.name = ".".join(table.name())
        self.base: int | None = None  # the snapshot the plan was read from
        self.snapshots: list[StagedSnapshot] = []
        self.keys: list[pa.Table] = []
        self.replayable = False
        self.tx: Transaction

    def stage(self, tx: Transaction, changes: list[TableChange]) -> None:
        """Plan ``changes`` on the table as ``tx`` sees it, and stage them in ``tx``."""
        self.tx, self.base = tx, tx.table_metadata.current_snapshot_id
        self.snapshots, self.keys = [], []
        self.replayable = self.mode != "overwrite"  # its delete covers whatever is there
        if self.mode == "overwrite" and self.base is not None:
            tx.delete(AlwaysTrue(), snapshot_properties=self.properties)
        appends: list[DataFile] = []
        replaced = 0
        for change in changes:
            if isinstance(change, VersionActivation):
                self._add(appends)
                appends = []
                self.replayable = False  # any commit may add rows of older versions
                self._activate(change)
            elif self.mode == "upsert" and change.keys is not None:
                self._add(appends)
                appends = []
                self.keys.append(change.keys)
                replaced += self._rewrite(without_keys(change.keys), extra=change.files)
            else:
                appends.extend(change.files)  # consecutive appends: one snapshot
        self._add(appends)
        if replaced:
            LOGGER.info("Upsert into %s replaces %d existing row(s)", self.name, replaced)

    def still_valid(self) -> bool:
        """Whether the plan holds on the table's current snapshot: the commits since the
        plan's snapshot removed none of the files it replaces and added no row with one
        of its keys (planning again would give the same files)."""
        if not self.replayable:
            return False
        delta = changes_since(self.table.metadata, self.table.io, self.base)
        if delta is None or delta.deleted & {f.file_path for s in self.snapshots
                                             for f in s.removed}:
            return False
        if holds_any_key(delta.added, self.table.metadata, self.table.io, self.keys):
            return False
        LOGGER.info("Commit to %s conflicted; the %d commit(s) since its plan touched none "
                    "of its keys and files, so it is committed again as planned", self.name,
                    delta.commits)
        return True

    def restage(self, tx: Transaction) -> None:
        """Stage the planned snapshots again in ``tx``, on the refreshed table (after
        :meth:`still_valid`)."""
        self.tx = tx
        planned, self.snapshots = self.snapshots, []
        for snapshot in planned:
            self._snapshot(snapshot.removed, snapshot.added)

    def _snapshot(self, removed: list[DataFile], added: list[DataFile]) -> None:
        if not (removed or added):
            return
        self.snapshots.append(StagedSnapshot(removed, added))
        update = self.tx.update_snapshot(snapshot_properties=self.properties)
        if not removed:
            with update.fast_append() as add:
                for data_file in added:
                    add.append_data_file(data_file)
            return
        with update.overwrite() as overwrite:
            for data_file in removed:
                overwrite.delete_data_file(data_file)
            for data_file in added:
                overwrite.append_data_file(data_file)

    def _add(self, files: list[DataFile]) -> None:
        self._snapshot([], files)

    def _activate(self, activation: VersionActivation) -> None:
        retired = self._rewrite(
            drop_older_versions(activation.version) if activation.hard_delete
            else mark_older_versions_deleted(activation.version, activation.at))
        LOGGER.info("ACTIVATE_VERSION %d on %s: %s %d row(s) of older versions",
                    activation.version, self.name,
                    "deleted" if activation.hard_delete else "marked _sdc_deleted_at on",
                    retired)

    def _rewrite(self, change: RowChange, extra: list[DataFile] | None = None) -> int:
        """Copy-on-write ``change`` plus ``extra`` new files, as one overwrite snapshot."""
        rewrite = rewrite_rows(self.tx, self.table.io, change)
        self._snapshot(rewrite.removed, rewrite.added + (extra or []))
        return rewrite.rows_changed
