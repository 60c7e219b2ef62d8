"""Column kinds inferred from sampled Sheets cells."""

from __future__ import annotations

from typing import Any

import pytest

from tap_dativo_google_sheets.cells import infer_kind


def number(value: float, fmt: str | None = None) -> dict[str, Any]:
    cell: dict[str, Any] = {"effectiveValue": {"numberValue": value}}
    if fmt:
        cell["effectiveFormat"] = {"numberFormat": {"type": fmt}}
    return cell


@pytest.mark.parametrize(("cells", "kind"), [
    # whole numbers stay number: an integer column one run and a number column the next
    # (after an edit) would be a type change Iceberg refuses
    ([number(1), number(2)], "number"),
    ([number(1), number(2.5)], "number"),
    ([number(45000, "DATE"), number(45001, "DATE")], "date"),
    ([number(45000.5, "DATE_TIME"), number(45001, "DATE")], "date-time"),
    ([{"effectiveValue": {"boolValue": True}}], "boolean"),
    ([number(1), {"effectiveValue": {"stringValue": "x"}}], "string"),
    ([{}, {"effectiveValue": {"stringValue": ""}}], "string"),
])
def test_inferred_kinds(cells: list[dict[str, Any]], kind: str) -> None:
    assert infer_kind(cells) == kind
