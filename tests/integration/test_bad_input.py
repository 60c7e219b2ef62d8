"""Bad input never crashes the target, never loses a record silently, never leaks a
traceback: each case is dead-lettered with its rule, or stops the run with one line
naming the input line (exit 2) and emitting no STATE past the last commit."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyiceberg.catalog import Catalog

from dativo.errors import DativoError
from dativo.iceberg.writer import IcebergWriter
from target_dativo_iceberg.loader import Loader
from target_dativo_iceberg.message_loop import run_message_loop
from target_dativo_iceberg.settings import TargetSettings
from tests.conftest import emitted_states, read_table, run_target

SCHEMA = (b'{"type":"SCHEMA","stream":"s","key_properties":["id"],"schema":{"properties":{'
          b'"id":{"type":"integer"},"x":{"type":["number","null"]},'
          b'"d":{"type":["string","null"],"format":"date-time"},'
          b'"o":{"type":["object","null"]}}}}\n')
STATE = b'{"type":"STATE","value":{"ok":1}}\n'


def rec(body: str) -> bytes:
    return b'{"type":"RECORD","stream":"s","record":{' + body.encode() + b"}}\n"


FAILS = {  # input -> the one error line it must produce (exit 2, no STATE)
    "malformed JSON": (SCHEMA + rec('"id":1') + STATE + b'{"type":"RECORD","stream":"s",'
                       b'"record":{"id":2,}\n', "line 4: stream 's': RECORD could not be read"),
    "truncated last line": (SCHEMA + rec('"id":1') + STATE + b'{"type":"RECORD","stream":"s"'
                            b',"record":{"id":2', "line 4: stream 's': RECORD could not be read"),
    "NUL bytes": (SCHEMA + STATE + b"\x00\x00\n", "line 3: not valid JSON"),
    "invalid UTF-8": (SCHEMA + STATE + b'{"type":"RECORD","stream":"s","record":{"id":1,'
                      b'"o":{"a":"\xff\xfe"}}}\n', "invalid UTF-8"),
    "wrong message type": (SCHEMA + STATE + b'{"type":"RECORDS","stream":"s"}\n',
                           "line 3: unknown Singer message type 'RECORDS'"),
    "RECORD of an unknown stream": (SCHEMA + STATE + rec('"id":1').replace(b'"s"', b'"zz"'),
                                    "line 3: RECORD for stream 'zz' arrived before its SCHEMA"),
    "schema without properties": (b'{"type":"SCHEMA","stream":"s","schema":{"type":"object"}}\n',
                                  "line 1: SCHEMA for stream 's' is unusable"),
    "conflicting SCHEMA": (SCHEMA + rec('"id":1') + STATE + SCHEMA.replace(
        b'"id":{"type":"integer"}', b'"id":{"type":"string"}') + rec('"id":"a"'),
        "Cannot change column type: id: long -> string"),
}


@pytest.mark.parametrize("case", sorted(FAILS))
def test_bad_input_stops_the_run_with_one_clear_line(
    case: str, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    data, message = FAILS[case]
    result = run_target(target_config(), data)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert message in stderr
    assert "Traceback" not in stderr
    # A STATE before the bad line is emitted once the rows before it are committed;
    # one that shares a batch with a bad RECORD line is not (the batch is refused
    # whole, and the rerun sends it again).
    same_batch = case in ("malformed JSON", "truncated last line")
    expected = [] if same_batch or STATE not in data else [{"ok": 1}]
    assert emitted_states(result) == expected
    if expected and rec('"id":1') in data.split(STATE)[0]:
        assert read_table(open_catalog(), ("acme", "default", "s")).column("id").to_pylist() \
            == [1]


def test_bad_values_are_dead_lettered_with_their_rule(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    deep = '"o":' + '{"a":' * 300 + "1" + "}" * 300
    data = (SCHEMA + rec('"id":1,"x":NaN') + rec('"id":2,"x":Infinity') + rec('"id":3,"x":1.5')
            + rec('"id":4,"d":"2024-13-45T99:00:00Z"') + rec('"id":5,"d":"99999-01-01T00:00:00Z"')
            + rec('"id":6,"d":"0001-01-01T00:00:00Z"') + rec('"id":7.5') + rec('"id":8,' + deep)
            + rec('"id":9,"o":{"a":"x\\u0000y"}') + STATE)
    result = run_target(target_config(), data)
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    assert sorted(read_table(catalog, ("acme", "default", "s")).column("id").to_pylist()) == [
        3, 6, 8, 9]
    dead = read_table(catalog, ("acme", "default", "s__dead_letter")).to_pylist()
    assert sorted((d["line_number"], [(r["field"], r["rule"]) for r in d["reasons"]])
                  for d in dead) == [
        (2, [("x", "type")]), (3, [("x", "type")]), (5, [("d", "type")]),
        (6, [("d", "range")]), (8, [("id", "type")])]
    assert emitted_states(result) == [{"ok": 1}]


def _load_in_process(data: bytes, tenant: str = "acme") -> dict[str, Any] | None:
    """Run the target's loop and loader on ``data``; ``None`` when it stopped with a
    DativoError (the expected way to refuse input, or a config such as the tenant)."""
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Path(tmp)
        try:
            settings_ = TargetSettings.from_config({
                "tenant_id": tenant, "validation_mode": "warn", "batch_size_rows": 3,
                "max_record_bytes": _MAX_RECORD_BYTES,
                "catalog": {"name": "fuzz", "type": "sql",
                            "uri": f"sqlite:///{warehouse / 'catalog.db'}",
                            "warehouse": warehouse.as_uri()}})
        except DativoError:
            return None
        states: list[Any] = []
        loader = Loader(settings_, lambda: IcebergWriter(settings_.catalog, tenant),
                        states.append)
        try:
            run_message_loop(io.BytesIO(data), loader)
            return loader.finish()
        except DativoError:
            loader.close()
            return None


_MAX_RECORD_BYTES = 1024 * 1024


def _schema(stream: str, properties: bytes = b'"id":{"type":"integer"}') -> bytes:
    return (b'{"type":"SCHEMA","stream":' + json.dumps(stream).encode()
            + b',"schema":{"properties":{' + properties + b"}}}\n")


def _rec(stream: str, record: bytes = b'{"id":1}') -> bytes:
    return b'{"type":"RECORD","stream":' + json.dumps(stream).encode() + b',"record":' \
        + record + b"}\n"


_DEEP = b'"id":{"type":"integer"},"o":' + b'{"type":"object","properties":{"a":' * 80 \
    + b'{"type":"integer"}' + b"}}" * 80
# Hostile shapes of issue 12 (and their neighbours), each one example of the fuzzer.
_HOSTILE: dict[str, tuple[list[bytes], str]] = {
    "compact RECORD without record": ([b'{"type":"RECORD","stream":"s"}\n', STATE], "acme"),
    "compact RECORD with record null": (
        [b'{"type":"RECORD","stream":"s","record":null}\n', STATE], "acme"),
    "spaced RECORD with record null": (
        [b'{"type": "RECORD", "stream": "s", "record": null}\n'], "acme"),
    "STATE value a string": ([rec('"id":1'), b'{"type":"STATE","value":"x"}\n'], "acme"),
    "STATE value null": ([b'{"type":"STATE","value":null}\n'], "acme"),
    "STATE value an array": ([rec('"id":1'), b'{"type":"STATE","value":[1]}\n'], "acme"),
    "invalid UTF-8 in a string value": (
        [rec('"id":1'), b'{"type":"RECORD","stream":"s","record":{"id":2,"d":"\xff\xfe"}}\n',
         STATE], "acme"),
    "invalid UTF-8 in a stream name": ([_rec("s").replace(b'"s"', b'"s\xff"')], "acme"),
    "duplicate key": ([rec('"id":1'), rec('"id":2,"id":3'), STATE], "acme"),
    "duplicate record member": ([_rec("s", b'{"id":1},"record":{"id":2}')], "acme"),
    "lone surrogate": ([rec('"id":1'), rec('"id":2,"d":"\\ud800"'), STATE], "acme"),
    "RECORD over max_record_bytes": (
        [rec('"id":1'), rec('"id":2,"d":"' + "x" * _MAX_RECORD_BYTES + '"'), STATE], "acme"),
    "tenant with a trailing newline": ([rec('"id":1'), STATE], "beta\n"),
    "SCHEMA nested 80 deep": ([_schema("deep", _DEEP), _rec("deep"), STATE], "acme"),
    "stream named like a dead-letter table": (
        [_schema("orders__dead_letter"), _rec("orders__dead_letter"), _schema("orders"),
         _rec("orders"), STATE], "acme"),
    "streams a/b and a.b": (
        [_schema("a/b"), _rec("a/b"), _schema("a.b"), _rec("a.b"), STATE], "acme"),
    "empty stream name": ([_schema(""), _rec(""), STATE], "acme"),
    "stream named ..": ([_schema(".."), _rec(".."), STATE], "acme"),
}

_LINES = st.sampled_from([
    rec('"id":1'), rec('"id":"x"'), rec('"id":2,"x":1e400'), rec('"id":3,"d":"nope"'),
    rec('"id":4,"o":[1]'), STATE, SCHEMA, b"\n", b"{}\n", b"[1]\n", b'{"type":"STATE"}\n',
    b'{"type":"ACTIVATE_VERSION","stream":"s","version":"v"}\n', b"\xff\n",
    *(line for lines, _ in _HOSTILE.values() for line in lines
      if len(line) < _MAX_RECORD_BYTES and line not in (STATE,)),
])


def _with_hostile_examples(test: Callable[..., None]) -> Callable[..., None]:
    for lines, tenant in _HOSTILE.values():
        test = example(lines=lines, cut=1 << 30, noise=b"", tenant=tenant)(test)
    return test


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_LINES, max_size=12), cut=st.integers(0, 2000),
       noise=st.binary(max_size=8), tenant=st.just("acme"))
@example(lines=[rec('"id":1')], cut=29, noise=b"", tenant="acme")  # found in CI: closed twice
@_with_hostile_examples
def test_fuzzed_input_is_loaded_in_full_or_refused_cleanly(
    lines: list[bytes], cut: int, noise: bytes, tenant: str,
) -> None:
    data = SCHEMA + b"".join(lines)
    data = data[:len(SCHEMA) + cut] + noise  # truncate anywhere, then garbage
    summary = _load_in_process(data, tenant)  # any exception but DativoError fails the test
    if summary is not None:
        for stream in summary["streams"].values():
            assert stream["received"] == stream["committed"] + stream["rejected"]


def test_a_huge_line_is_loaded_whole(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """A 40 MB RECORD line (bigger than the 8 MB read block and pyarrow's 16 MB parse
    block) goes through the per-record path and lands unchanged."""
    big = "x" * (40 * 1024 * 1024)
    result = run_target(target_config(),
                        SCHEMA + rec('"id":1,"o":{"big":"' + big + '"}') + rec('"id":2') + STATE)
    assert result.returncode == 0, result.stderr.decode()
    rows = read_table(open_catalog(), ("acme", "default", "s")).sort_by("id").to_pylist()
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["o"] == '{"big":"' + big + '"}'
