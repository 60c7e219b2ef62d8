"""``dativo maintain``: keep landed Iceberg tables cheap to store and fast to read.

One module per job, each usable without the CLI:

- :mod:`~dativo.iceberg.maintenance.orphans`: delete data files no snapshot references
  (left by killed or failed runs);
- :mod:`~dativo.iceberg.maintenance.expire`: expire old snapshots and delete the files only
  they referenced;
- :mod:`~dativo.iceberg.maintenance.compact`: rewrite small data files into target-size ones.

pyiceberg is imported by those modules, so import them where they are needed.
"""
