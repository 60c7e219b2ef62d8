"""dativo.markdown_kv: golden files pin the rendered text, Hypothesis the round trips,
and every parse error names its line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dativo.markdown_kv as mkv
from dativo.errors import CodecError
from dativo.markdown_kv import (
    Document,
    KVRow,
    MarkdownKVError,
    RecordBlock,
    Section,
    detect_dialect,
    key_problem,
    kv_rows,
    parse_document,
    parse_records,
    render_document,
    render_record,
    render_records,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "markdown_kv"

ORDER_1: dict[str, Any] = {
    "order_id": 1, "customer": "Ann Example", "amount": Decimal("12.50"), "paid": True,
    "note": None, "code": "0042", "empty": "", "padded": "  indented",
    "url": "https://example.com/a?b=c", "ratio": "a:b :: c", "tags": ["rush", "gift"],
    "address": {"city": "Zürich", "zip": "8001"},
}
ORDER_2: dict[str, Any] = {
    "order_id": 2, "customer": "true", "amount": 7, "paid": False,
    "note": "Call first.\nThen ship:\n  - by noon", "snippet": "```sql\nselect 1\n```",
    "quoted": '"hello" she said', "blank_lines": "para one\n\npara two",
    "emoji": "😀 café",
}
CUSTOMER = Document(
    doc_id="cust-42",
    metadata={"source": "crm", "tags": ["vip", "eu"]},
    sections=(
        Section("profile", {"name": "Ann Example", "tier": "gold", "since": "2019",
                            "score": 9.5, "active": True}),
        Section("notes", {"summary": "Prefers email.\nSpeaks German:: and French.",
                          "last_call": None, "raw": {"calls": [1, 2, 3]}}),
    ),
)


def golden(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# --- golden files ---------------------------------------------------------------------


def test_record_blocks_render_matches_golden_file() -> None:
    text = render_records([("1", ORDER_1), ("2", ORDER_2)], title="orders")
    assert text == golden("orders.record_blocks.md")


def test_record_blocks_parse_golden_file_exactly() -> None:
    blocks = parse_records(golden("orders.record_blocks.md"), parse_float=Decimal)
    assert blocks == [RecordBlock("1", ORDER_1), RecordBlock("2", ORDER_2)]
    assert [b.line for b in blocks] == [3, 20]
    assert list(blocks[0].record) == list(ORDER_1)  # key order is the file's


def test_sectioned_render_matches_golden_file() -> None:
    assert render_document(CUSTOMER) == golden("customer.sectioned.md")


def test_sectioned_parse_golden_file_exactly() -> None:
    document = parse_document(golden("customer.sectioned.md"))
    assert document == CUSTOMER
    assert [s.line for s in document.sections] == [9, 17]


def test_key_order_follows_columns_then_the_record() -> None:
    record = {"b": 2, "extra": "x", "a": 1}
    text = render_record("7", record, columns=["a", "missing", "b"])
    assert text == "## Record 7\n\n```\na: 1\nb: 2\nextra: x\n```\n"
    document = Document(None, {}, (Section("s", record),))
    assert render_document(document, columns=["a", "b"]) == "# s\n\na:: 1\nb:: 2\nextra:: x\n"


def test_empty_record_and_empty_document() -> None:
    assert render_record("x", {}) == "## Record x\n\n```\n```\n"
    assert parse_records("## Record x\n\n```\n```\n") == [RecordBlock("x", {})]
    assert render_document(Document(None, {}, ())) == ""
    assert parse_document("") == Document(None, {}, ())
    assert parse_records("") == []


def test_fence_outgrows_backtick_runs_in_values() -> None:
    text = render_record("1", {"code": "a ````` b"})
    assert text.split("\n")[2] == "``````"
    assert parse_records(text) == [RecordBlock("1", {"code": "a ````` b"})]


# --- value rules ----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (None, "null"), ("", '""'), ("null", '"null"'), (True, "true"), ("true", '"true"'),
    (12, "12"), ("12", '"12"'), (12.5, "12.5"), ("12.5", '"12.5"'), (1.0, "1.0"),
    (Decimal("12.50"), "12.50"), ("1e5", '"1e5"'), ("01", "01"), ("+1", "+1"),
    ("NaN", "NaN"), (" x", '" x"'), ("x ", '"x "'), ("[x", '"[x"'), ('"q"', '"\\"q\\""'),
    ("a: b", "a: b"), ("x::y", "x::y"), ("tab\there", '"tab\\there"'),
    ([1, "a", None], '[1,"a",null]'), ({"k": {"n": []}}, '{"k":{"n":[]}}'),
    ("line\nnext", "line\n  next"), ("line\n\nnext", '"line\\n\\nnext"'),
    ("line \nnext", "line \n  next".replace("line ", '"line \\nnext"').split("\n")[0]),
    ("trailing\n", '"trailing\\n"'), ("\nleading", '"\\nleading"'),
    ("99\nbottles", '"99\\nbottles"'),
])
def test_value_rendering(value: Any, text: str) -> None:
    assert mkv.encode_value(value) == text
    assert parse_records(render_record("1", {"k": value}),
                         parse_float=Decimal if isinstance(value, Decimal) else float
                         )[0].record == {"k": value}


def test_hand_written_quotes_and_empty_values_parse() -> None:
    text = "## Record 1\n```\ncode: \"0042\"\nnone:\nblock:\n  one\n    two\nx: 1\n```\n"
    assert parse_records(text)[0].record == {"code": "0042", "none": "", "block": "one\n  two",
                                             "x": 1}
    assert parse_document("# s\nk::\n  a\n  b\n") == Document(None, {}, (
        Section("s", {"k": "a\nb"}),))


def test_decimal_parsing_keeps_digits() -> None:
    text = render_record("1", {"a": Decimal("1.10"), "b": [Decimal("2.50")]})
    assert text == "## Record 1\n\n```\na: 1.10\nb: [2.50]\n```\n"
    record = parse_records(text, parse_float=Decimal)[0].record
    assert str(record["a"]) == "1.10" and str(record["b"][0]) == "2.50"


@pytest.mark.parametrize(("value", "why"), [
    (float("nan"), "is not a finite number"),
    (Decimal("Infinity"), "is not a finite number"),
    ({1: "a"}, "has a non-string key 1"),
    ({"x"}, "has type set, which has no JSON form"),
    ("\ud800", "is not valid Unicode text"),
])
def test_unrenderable_values_name_the_key(value: Any, why: str) -> None:
    with pytest.raises(MarkdownKVError) as info:
        render_record("1", {"price": value})
    assert info.value.key == "price"
    assert why in str(info.value)
    assert str(info.value).startswith("key 'price': ")


@pytest.mark.parametrize("key", ["", " a", "a ", "#a", "a: b", "a::b", "a:", "a\nb", 5])
def test_invalid_keys_are_refused(key: Any) -> None:
    assert key_problem(key) is not None
    with pytest.raises(MarkdownKVError, match="key"):
        render_record("1", {key: 1})


@pytest.mark.parametrize("key", ["a", "a:b", "http://x", "a b", "ключ", "a-b_c.d", "`x`"])
def test_valid_keys(key: str) -> None:
    assert key_problem(key) is None


@pytest.mark.parametrize("doc_id", ["", " 1", "1\n2"])
def test_invalid_record_ids_are_refused(doc_id: str) -> None:
    with pytest.raises(MarkdownKVError, match="record id"):
        render_record(doc_id, {})


# --- parse errors: each names the line and what to do --------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("## Record 1\n\n```\nname Ann\n```\n",
     "line 4: expected a `key: value` line, got 'name Ann'"),
    ("## Record 1\n\n```\na: 1\na: 2\n```\n",
     "line 5: key 'a': the key appears twice in the same block; keep one"),
    ("## Record 1\n\n```\na: [1,\n```\n",
     "line 4: key 'a': value '[1,' starts like JSON but is not valid JSON"),
    ("## Record 1\n\n```\na: 1\n  more\n```\n",
     "line 5: indented line does not continue a text value"),
    ("## Record 1\n\n```\na: 1\n",
     "line 1: record '1' ends without its block: the fence opened on line 3"),
    ("## Record 1\n````\na: 1\n## Record 2\n",
     "line 4: record '1': its block (fence opened on line 2) is not closed before the next "
     "record; add a line ```` before it"),
    ("## Record 1\n\nname: Ann\n",
     "line 3: record '1': expected a ``` fence opening the block after line 1"),
    ("## Recrod 2\n",
     "line 1: expected `## Record <id>`, a `# title` or a blank line outside record blocks"),
    ("## Record 1\n```\n#a: 1\n```\n", "line 3: key '#a': a key must not start with '#'"),
    ("## Record 1\n```\na: NaN\nb: [NaN]\n```\n",
     "line 4: key 'b': value '[NaN]' starts like JSON but is not valid JSON"),
])
def test_record_block_errors(text: str, message: str) -> None:
    with pytest.raises(MarkdownKVError) as info:
        parse_records(text, source="data/orders.md")
    assert str(info.value).startswith(f"data/orders.md: {message}")
    assert info.value.source == "data/orders.md"
    assert isinstance(info.value, CodecError)


@pytest.mark.parametrize(("text", "message"), [
    ("---\ndoc_id: 1\n", "line 1: the front matter is not closed"),
    ("---\na: [1\n---\n", "line 2: front matter is not valid YAML: expected ',' or ']'"),
    ("---\n- a\n---\n", "line 2: front matter must be a YAML mapping with string keys"),
    ("---\ndoc_id: [1]\n---\n", "line 2: doc_id must be a string, got [1]"),
    ("name:: Ann\n", "line 1: 'name:: Ann' comes before the first `# title` heading"),
    ("# a\n\nx:: 1\n\n# a\n", "line 5: section 'a' was already started on line 1"),
    ("# a\n## b\n", "line 2: only `# title` headings start sections, got '## b'"),
    ("# a\nx: 1\n", "line 2: expected a `key:: value` line, got 'x: 1'"),
    ("# a\nx:: 1\nx:: 2\n", "line 3: key 'x': the key appears twice in the same block"),
    ("# a\nx:: {\n", "line 2: key 'x': value '{' starts like JSON but is not valid JSON"),
])
def test_sectioned_errors(text: str, message: str) -> None:
    with pytest.raises(MarkdownKVError) as info:
        parse_document(text, source="notes.md")
    assert str(info.value).startswith(f"notes.md: {message}")


def test_windows_line_endings_and_bom_are_read() -> None:
    text = "\ufeff## Record 1\r\n\r\n```\r\na: x\r\n  y\r\n```\r\n"
    assert parse_records(text) == [RecordBlock("1", {"a": "x\ny"})]
    assert parse_document("\ufeff---\r\ndoc_id: d\r\n---\r\n# s\r\nk:: v\r\n") == Document(
        "d", {}, (Section("s", {"k": "v"}),))


def test_front_matter_dates_stay_strings_and_integer_ids_become_strings() -> None:
    document = parse_document("---\ndoc_id: 42\nday: 2024-01-05\n---\n")
    assert document == Document("42", {"day": "2024-01-05"}, ())


# --- detection and rows ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "dialect"), [
    ("", "record_blocks"), ("# t\n\n## Record 1\n```\n```\n", "record_blocks"),
    ("---\ndoc_id: 1\n---\n", "sectioned"), ("# s\n\nk:: v\n", "sectioned"),
    ("# s\n\nk::\n", "sectioned"),
])
def test_detect_dialect(text: str, dialect: str) -> None:
    assert detect_dialect(text) == dialect


def test_kv_rows_of_a_document_and_a_block() -> None:
    assert kv_rows(CUSTOMER)[:3] == [
        KVRow("cust-42", "", "source", "crm", '"crm"', 0),
        KVRow("cust-42", "", "tags", '["vip","eu"]', '["vip","eu"]', 1),
        KVRow("cust-42", "profile", "name", "Ann Example", '"Ann Example"', 2),
    ]
    assert kv_rows(CUSTOMER)[-2:] == [
        KVRow("cust-42", "notes", "last_call", None, "null", 8),
        KVRow("cust-42", "notes", "raw", '{"calls":[1,2,3]}', '{"calls":[1,2,3]}', 9),
    ]
    assert kv_rows(RecordBlock("9", {"a": "12", "b": 12})) == [
        KVRow("9", "", "a", "12", '"12"', 0), KVRow("9", "", "b", "12", "12", 1)]
    assert kv_rows(Document(None, {}, (Section("s", {"k": 1}),)), doc_id="f.md")[0].doc_id \
        == "f.md"


def test_public_surface() -> None:
    assert sorted(mkv.__all__) == [
        "DIALECTS", "Dialect", "Document", "KVRow", "MarkdownKVError", "RecordBlock",
        "Section", "compact_json", "decode_value", "detect_dialect", "encode_value",
        "key_problem", "kv_rows", "parse_document", "parse_records", "render_document",
        "render_record", "render_records",
    ]


# --- round trips ------------------------------------------------------------------------

KEYS = st.text(min_size=1, max_size=12).filter(lambda k: key_problem(k) is None)
LABELS = st.text(min_size=1, max_size=12).filter(
    lambda s: s.isprintable() and s == s.strip())
SCALARS = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text())
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
RECORDS = st.dictionaries(KEYS, JSON, max_size=6)
# Strings built to hit the edges: separators, fences, indentation, JSON look-alikes.
TRICKY = st.lists(st.sampled_from(
    ["a", " ", "\n", ":", "::", ": ", "```", "`", "#", "  ", "null", "1", "\"", "[", "{",
     "\t", "\r", "---", "## Record 1", "é", "😀"]), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(LABELS, RECORDS), max_size=4), st.none() | LABELS)
def test_record_blocks_round_trip(blocks: list[tuple[str, dict]], title: str | None) -> None:
    text = render_records(blocks, title=title)
    assert detect_dialect(text) == "record_blocks"
    assert [(b.doc_id, b.record) for b in parse_records(text)] == blocks


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, TRICKY, max_size=5))
def test_tricky_strings_round_trip_in_both_dialects(record: dict[str, str]) -> None:
    assert parse_records(render_record("1", record))[0].record == record
    document = Document(None, {}, (Section("s", record),))
    assert parse_document(render_document(document)) == document


@settings(max_examples=300, deadline=None)
@given(st.none() | LABELS,
       st.dictionaries(KEYS.filter(lambda k: k != "doc_id"), JSON, max_size=3),
       st.dictionaries(LABELS.filter(lambda t: not t.startswith("#")), RECORDS, max_size=3))
def test_sectioned_round_trip(doc_id: str | None, metadata: dict, sections: dict) -> None:
    document = Document(doc_id, metadata,
                        tuple(Section(title, fields) for title, fields in sections.items()))
    text = render_document(document)
    if doc_id is not None or metadata:
        assert detect_dialect(text) == "sectioned"
    assert parse_document(text) == document


@settings(max_examples=200, deadline=None)
@given(RECORDS)
def test_columns_only_reorder(record: dict) -> None:
    columns = sorted(record, reverse=True)
    (block,) = parse_records(render_record("1", record, columns=columns))
    assert block.record == record
    assert list(block.record) == columns
