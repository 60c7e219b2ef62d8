"""Console entry point: set up the allocator before any library is imported."""

from __future__ import annotations

from target_dativo_iceberg.memory import imports_without_gc, use_one_shared_heap


def main() -> None:
    use_one_shared_heap()
    with imports_without_gc():
        from target_dativo_iceberg.target import TargetDativoIceberg

    TargetDativoIceberg.cli()
