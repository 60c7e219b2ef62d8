"""target-dativo-iceberg: a Singer target that lands contract-checked data in Iceberg."""
