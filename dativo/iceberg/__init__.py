"""The Iceberg layer: the only package that imports pyiceberg."""
