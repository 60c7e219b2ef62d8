"""The Iceberg layer: the only package that imports pyiceberg.

The target, ``dativo maintain`` and ``dativo table show`` reach Iceberg only through
it (``tests/unit/test_import_rules.py`` holds every other module to type-only
imports). It owns, one module a job:

- :mod:`~dativo.iceberg.catalog`: opening a catalog from a ``catalog`` config block
  (Meltano's nested form flattened, the embedded default, secrets redacted);
- :mod:`~dativo.iceberg.naming`: tenant and domain namespaces, table identifiers, the
  reserved suffixes of the target's own tables, snapshot-summary keys;
- :mod:`~dativo.iceberg.commits`: commit with conflict retry, one loop for all;
- :mod:`~dativo.iceberg.writer`: creating, evolving and committing to tables, with
  :mod:`~dativo.iceberg.schema_union`, :mod:`~dativo.iceberg.table_changes` (what one
  commit stages, re-planned after a lost race), :mod:`~dativo.iceberg.rewrites`
  (copy-on-write upserts and version retirement) and :mod:`~dativo.iceberg.staging`
  (what a batch leaves for the next commit);
- :mod:`~dativo.iceberg.data_files`: Parquet data files rolled at the target size;
- :mod:`~dativo.iceberg.file_defaults`: that size and the compression codec by default;
- :mod:`~dativo.iceberg.dead_letter`: the dead-letter table's columns;
- :mod:`~dativo.iceberg.tables` and :mod:`~dativo.iceberg.maintenance`: reading and
  maintaining landed tables;
- :mod:`~dativo.iceberg.row_rewrite`: rewriting a table's rows in one copy-on-write
  commit (``dativo keys rewrap``);
- :mod:`~dativo.iceberg.erasure`: a data subject's rows out of a tenant's tables, dead
  letters and Markdown-KV files (``dativo forget``).

Importing the package, :mod:`~dativo.iceberg.catalog`, :mod:`~dativo.iceberg.naming`,
:mod:`~dativo.iceberg.staging`, :mod:`~dativo.iceberg.file_defaults` or
:mod:`~dativo.iceberg.dead_letter` does not import
pyiceberg: the target loads it on its commit thread, off the start-up path.

Private pyiceberg helpers we rely on
------------------------------------
pyiceberg is pinned to one release (dativo-core's ``iceberg`` extra) because these are
not public API and may change in any release. Each is exercised by
``tests/unit/test_iceberg_private_api.py`` (the test named), which fails first when an
upgrade breaks one:

- ``pyiceberg.io.pyarrow._dataframe_to_data_files`` (``writer``: a batch as data
  files): ``test_dataframe_to_data_files``;
- ``pyiceberg.io.pyarrow._determine_partitions``, ``_to_requested_schema`` (with
  ``format_model=``), ``_pyarrow_to_schema_without_ids`` and the private attribute
  ``ParquetFormatWriter._fos`` (``data_files``: rolling Parquet files with field ids
  and statistics): ``test_rolling_data_files_helpers``;
- ``pyiceberg.catalog.Catalog._convert_schema_if_needed`` (``schema_union``: Arrow
  schema to Iceberg): ``test_convert_schema_if_needed``;
- ``pyiceberg.table.update.schema._UnionByNameVisitor`` and its ``_add_column`` and
  ``_update_column`` (``schema_union``: linear-time schema union):
  ``test_union_by_name_visitor``;
- ``pyiceberg.table.Transaction._rebuild_snapshot_updates`` (overridden) and
  ``Transaction._table`` (``table_changes.PlannedTransaction``: a planned commit that
  lost a race is planned again, never re-applied):
  ``test_rebuild_snapshot_updates_is_the_retry_hook``;
- ``pyiceberg.table.Transaction._updates`` and ``pyiceberg.io.pyarrow.ArrowScan``
  (``quality_gate``: the staged snapshot's summary gets the quality results, and the
  rows a commit adds are read before it lands): the tests of
  ``tests/unit/test_quality_gate_iceberg.py``.
"""
