"""The naming rule, identifier checks and nesting limit (issue 12, findings 4, 5, 7)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo.contracts import MAX_NESTING_DEPTH, Contract, contract_from_singer_schema
from dativo.contracts.odcs import lint_document
from dativo.errors import CodecError, ConfigError
from dativo.iceberg.naming import MARKDOWN_SUFFIXES, RESERVED_SUFFIXES, table_identifier
from dativo.names import check_tenant, table_name
from target_dativo_iceberg.settings import MarkdownKVSettings, TargetSettings
from target_dativo_iceberg.stream_contracts import StreamTables

REPO = Path(__file__).resolve().parents[2]


def _old_rule(name: str) -> str:
    """The rule before issue 12, for names it handled well."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_") or "stream"


@pytest.mark.parametrize("name", [
    "users", "public-orders", "TestCamelcase", "test:SpecialChars!in?attributes",
    "test_strings_in_arrays", "ForecastingTypeToCategory", "crm", "2024_orders"])
def test_ordinary_names_keep_the_table_they_always_had(name: str) -> None:
    assert table_name(name) == _old_rule(name)


@pytest.mark.parametrize(("name", "table"), [
    ("orders  dead letter", "orders_dead_letter"),
    ("orders__dead_letter", "orders_dead_letter"),
    ("a/b", "a_b"), ("a.b", "a_b"), ("Users", "users"),
    ("日本語", "日本語"), ("Straße", "straße"), ("हिन्दी", "हिन्दी"),
    ("\uff26\uff55\uff4c\uff4c", "full"),  # NFKC: fullwidth letters are letters
])
def test_naming_rule(name: str, table: str) -> None:
    assert table_name(name) == table


@pytest.mark.parametrize("name", ["", ".", "..", "__", "/", "-", "users\n", "a\tb",
                                  "x\u202ey", "x" * 201, 7, None])
def test_names_that_cannot_name_a_table_are_refused(name: Any) -> None:
    with pytest.raises(ConfigError):
        table_name(name)


@given(st.text(max_size=40))
def test_no_name_yields_a_reserved_suffix(name: str) -> None:
    try:
        derived = table_name(name)
    except ConfigError:
        return
    assert "__" not in derived and not derived.startswith("_") and not derived.endswith("_")
    assert not derived.endswith(RESERVED_SUFFIXES)
    assert table_name(derived) == derived


def test_every_reserved_suffix_starts_with_a_double_underscore() -> None:
    assert all(s.startswith("__") and len(s) > 2 for s in RESERVED_SUFFIXES)
    suffixes = {MarkdownKVSettings(storage=storage, layout=layout).table_suffix
                for storage, layout in [("string", "row_per_kv"), ("raw_file", "row_per_kv"),
                                        ("structured", "row_per_kv"),
                                        ("structured", "document_level")]}
    assert suffixes == set(MARKDOWN_SUFFIXES) <= set(RESERVED_SUFFIXES)


@pytest.mark.parametrize("tenant", ["beta\n", "beta\r\n", "Beta", "1beta", "", "b" * 64, 5])
def test_tenant_is_matched_whole(tenant: Any) -> None:
    with pytest.raises(ConfigError, match=r"tenant_id: .* is invalid"):
        check_tenant("tenant_id", tenant)
    with pytest.raises(ConfigError, match=r"tenant_id: .* is invalid"):
        TargetSettings.from_config({"tenant_id": tenant})


def test_contract_tenant_and_domain_are_checked() -> None:
    other = Contract(name="users", fields=(), tenant="beta\n", source="c.odcs.yaml")
    with pytest.raises(ConfigError, match="belongs to tenant 'beta\\\\n'"):
        table_identifier("beta", other)
    odd = Contract(name="users", fields=(), domain="sales\n", source="c.odcs.yaml")
    with pytest.raises(ConfigError, match=r"domain name of contract c\.odcs\.yaml"):
        table_identifier("acme", odd)
    assert table_identifier("acme", Contract(name="Users", fields=(), domain="Sales")) == (
        "acme", "sales", "users")


def test_one_table_per_stream_in_a_run() -> None:
    tables = StreamTables("acme")
    assert tables.claim("a/b", Contract(name="a/b", fields=())) == ("acme", "default", "a_b")
    assert tables.claim("a/b", Contract(name="a/b", fields=())) == ("acme", "default", "a_b")
    with pytest.raises(CodecError, match=r"streams 'a/b' and 'a\.b' would both land in "
                                         r"table acme\.default\.a_b"):
        tables.claim("a.b", Contract(name="a.b", fields=()))


def _deep_singer(depth: int) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "integer"}
    for level in range(depth - 1, 0, -1):
        prop = {"type": "object", "properties": {f"l{level}": prop}}
    return {"properties": {"n": prop}}


def test_singer_schema_depth_limit_is_checked_before_recursing() -> None:
    contract_from_singer_schema("s", _deep_singer(MAX_NESTING_DEPTH), [])
    for depth in (MAX_NESTING_DEPTH + 1, 5000):  # 5000: far past Python's recursion limit
        with pytest.raises(CodecError, match=r"property n\.l1\..* is nested 33 levels deep"):
            contract_from_singer_schema("s", _deep_singer(depth), [])


def test_arrays_count_as_a_level() -> None:
    prop: dict[str, Any] = {"type": "integer"}
    for _ in range(MAX_NESTING_DEPTH):  # the column n plus 32 array levels: 33 deep
        prop = {"type": "array", "items": prop}
    with pytest.raises(CodecError, match=r"property n\[\]\[\].* is nested 33 levels deep"):
        contract_from_singer_schema("s", {"properties": {"n": prop}}, [])


def test_odcs_depth_limit_is_checked_before_recursing() -> None:
    prop: dict[str, Any] = {"name": "leaf", "logicalType": "integer"}
    for level in range(5000, 0, -1):
        prop = {"name": f"l{level}", "logicalType": "object", "properties": [prop]}
    doc = {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "x", "version": "1",
           "status": "active", "schema": [{"name": "t", "properties": [prop]}]}
    [problem] = lint_document(doc)
    assert problem.startswith("schema[0].properties[0]" + ".properties[0]" * 32 + " (l1.l2.")
    assert "nested 33 levels deep" in problem


def _regex_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals passed to ``re.compile/match/search/fullmatch``."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str | bytes)):
            value = node.args[0].value
            found.append((node.lineno, value if isinstance(value, str) else value.decode()))
    return found


def test_no_pattern_is_anchored_with_a_dollar() -> None:
    """``$`` also matches before a trailing newline: anchor with fullmatch or ``\\Z``."""
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {pattern!r}"
        for top in ("dativo", "taps", "targets")
        for path in sorted((REPO / top).rglob("*.py"))
        for line, pattern in _regex_literals(ast.parse(path.read_text(encoding="utf-8")))
        if re.search(r"(?<!\\)\$\)*$", pattern)
    ]
    assert offenders == []
