"""Data contracts: ODCS loading and linting, Arrow mapping, vectorised validation."""

from __future__ import annotations

from dativo.contracts.arrow_schema import arrow_schema
from dativo.contracts.model import MAX_NESTING_DEPTH, Contract, FieldKind, FieldSpec
from dativo.contracts.odcs import lint_document, load_contract, load_yaml
from dativo.contracts.resolve import resolve_contract_path
from dativo.contracts.singer_schema import contract_from_singer_schema
from dativo.contracts.validation import (
    ARROW_VIEW,
    REASONS_COLUMN,
    CompiledContract,
    compile_contract,
)

__all__ = [
    "ARROW_VIEW",
    "MAX_NESTING_DEPTH",
    "REASONS_COLUMN",
    "CompiledContract",
    "Contract",
    "FieldKind",
    "FieldSpec",
    "arrow_schema",
    "compile_contract",
    "contract_from_singer_schema",
    "lint_document",
    "load_contract",
    "load_yaml",
    "resolve_contract_path",
]
