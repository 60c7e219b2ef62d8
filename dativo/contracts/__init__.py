"""Data contracts: ODCS loading and linting, Arrow mapping, vectorised validation.

The Arrow side (``arrow_schema``, ``compile_contract`` and the names beside them) is
imported on first use, so a tap that only loads contracts runs without pyarrow
(``dativo-core[arrow]`` installs it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dativo.contracts.model import MAX_NESTING_DEPTH, Contract, FieldKind, FieldSpec
from dativo.contracts.odcs import lint_document, load_contract, load_yaml
from dativo.contracts.resolve import resolve_contract_path
from dativo.contracts.singer_schema import contract_from_singer_schema

if TYPE_CHECKING:
    from dativo.contracts.arrow_types import arrow_schema
    from dativo.contracts.validation import (
        ARROW_VIEW,
        REASONS_COLUMN,
        CompiledContract,
        compile_contract,
    )

_ARROW_NAMES = {
    "arrow_schema": "dativo.contracts.arrow_types",
    "ARROW_VIEW": "dativo.contracts.validation",
    "REASONS_COLUMN": "dativo.contracts.validation",
    "CompiledContract": "dativo.contracts.validation",
    "compile_contract": "dativo.contracts.validation",
}

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


def __getattr__(name: str) -> Any:
    """The Arrow names, imported on first access (PEP 562).

    All of them are bound at once, so one import of pyarrow serves every name.
    """
    if name not in _ARROW_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for attr, module in _ARROW_NAMES.items():
        globals()[attr] = getattr(importlib.import_module(module), attr)
    return globals()[name]
