"""Issue 12, finding 8 and the memory weak point, against the real target process.

Every message shape is either loaded (a record that breaks rule ``json`` or
``maxRecordBytes`` goes to the dead-letter table) or stops the run with one line that
names the input line, exit 2, and never a traceback or a temporary spool file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, REPO, emitted_states, read_table, run_target

SCHEMA = (b'{"type":"SCHEMA","stream":"s","schema":{"properties":{'
          b'"id":{"type":"integer"},"name":{"type":["string","null"]},'
          b'"o":{"type":["object","null"]}}}}\n')
# Only scalar columns: pyarrow's strict reader takes the batch (the fast path).
FLAT_SCHEMA = (b'{"type":"SCHEMA","stream":"s","schema":{"properties":{'
               b'"id":{"type":"integer"},"name":{"type":["string","null"]}}}}\n')
STATE = b'{"type":"STATE","value":{"ok":1}}\n'
FIRST = b'{"type":"RECORD","stream":"s","record":{"id":1,"name":"a"}}\n'


def rows(catalog: Catalog, table: str = "s") -> list[dict]:
    return sorted(read_table(catalog, ("acme", "default", table)).to_pylist(),
                  key=lambda r: r.get("id") or r.get("line_number"))


def assert_refused(result: subprocess.CompletedProcess[bytes], message: str) -> None:
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert message in stderr, stderr
    for leak in ("Traceback", "unexpected", "dativo-spool", ".ndjson"):
        assert leak not in stderr, stderr


@pytest.mark.parametrize("line", [
    b'{"type":"RECORD","stream":"s"}\n',
    b'{"type":"RECORD","stream":"s","record":null}\n',
    b'{"type":"RECORD","stream":"s","record":"x"}\n',
    b'{"type":"RECORD","stream":"s","record":[1]}\n',
    b'{"type": "RECORD", "stream": "s"}\n',
    b'{"type": "RECORD", "stream": "s", "record": null}\n',
], ids=["compact-no-record", "compact-null", "compact-string", "compact-array",
        "spaced-no-record", "spaced-null"])
def test_a_record_without_an_object_record_stops_the_run_naming_its_line(
    line: bytes, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """The compact form used to land an all-null row (exit 0)."""
    result = run_target(target_config(), SCHEMA + FIRST + STATE + line + FIRST)
    assert_refused(result, "line 4: RECORD for stream 's' has no object 'record'")
    assert emitted_states(result) == [{"ok": 1}]  # the rows before it are loaded
    assert [r["id"] for r in rows(open_catalog())] == [1]


@pytest.mark.parametrize(("value", "kind"), [
    (b'"abc"', "a string"), (b"null", "null"), (b"[1]", "an array"), (b"7", "an integer"),
    (b"7.5", "a number"), (b"true", "a boolean")])
def test_a_state_whose_value_is_not_an_object_is_refused(
    value: bytes, kind: str, target_config: Callable[..., Path],
) -> None:
    result = run_target(target_config(), SCHEMA + FIRST + STATE
                        + b'{"type":"STATE","value":' + value + b"}\n")
    assert_refused(result, f"line 4: STATE value must be a JSON object, not {kind}")
    assert emitted_states(result) == [{"ok": 1}]  # never passed through


@pytest.mark.parametrize("schema", [FLAT_SCHEMA, SCHEMA], ids=["strict-path", "duckdb-path"])
def test_invalid_utf8_in_a_string_value_names_its_input_line(
    schema: bytes, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """pyarrow's reader took the bytes; the commit then died on "unexpected
    UnicodeDecodeError" (exit 1, no line)."""
    bad = b'{"type":"RECORD","stream":"s","record":{"id":2,"name":"\xff\xfe"}}\n'
    # One record per batch, so the STATE before the bad line is not in its batch.
    result = run_target(target_config(batch_size_rows=1), schema + FIRST + STATE + FIRST + bad)
    assert_refused(result, "line 5: stream 's': RECORD could not be read (invalid UTF-8")
    assert emitted_states(result) == [{"ok": 1}]


def test_invalid_utf8_in_a_stream_name_names_its_input_line(
    target_config: Callable[..., Path],
) -> None:
    bad = b'{"type":"RECORD","stream":"s\xff","record":{"id":2}}\n'
    assert_refused(run_target(target_config(), SCHEMA + FIRST + bad), "line 3: not valid JSON")


@pytest.mark.parametrize("schema", [FLAT_SCHEMA, SCHEMA], ids=["strict-path", "duckdb-path"])
@pytest.mark.parametrize(("body", "field"), [
    (b'{"id":2,"name":"b","name":"c"}', "name"),
    (b'{"id":2,"name":"\\ud800"}', "name"),
    (b'{"id":2,"name":"\\udc00x"}', "name"),
], ids=["duplicate-key", "lone-high-surrogate", "lone-low-surrogate"])
def test_a_record_the_json_readers_refuse_is_dead_lettered_alone(
    schema: bytes, body: bytes, field: str, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog],
) -> None:
    """They used to refuse the whole batch naming a line of a temporary spool file."""
    bad = b'{"type":"RECORD","stream":"s","record":' + body + b"}\n"
    last = b'{"type":"RECORD","stream":"s","record":{"id":3,"name":"\\ud83d\\ude00"}}\n'
    result = run_target(target_config(), schema + FIRST + bad + last + STATE)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    catalog = open_catalog()
    assert [(r["id"], r["name"]) for r in rows(catalog)] == [(1, "a"), (3, "\U0001f600")]
    dead = rows(catalog, "s__dead_letter")
    assert [(d["line_number"], d["record_json"], d["reasons"]) for d in dead] == [
        (3, body.decode(), [{"field": field, "rule": "json"}])]
    assert emitted_states(result) == [{"ok": 1}]


def test_a_message_key_given_twice_stops_the_run_naming_its_line(
    target_config: Callable[..., Path],
) -> None:
    bad = b'{"type":"RECORD","stream":"s","record":{"id":2},"record":{"id":3}}\n'
    result = run_target(target_config(batch_size_rows=1), SCHEMA + FIRST + STATE + FIRST + bad)
    assert_refused(result, "line 5: stream 's': RECORD could not be read (the message has "
                           "the key 'record' twice)")
    assert emitted_states(result) == [{"ok": 1}]


def test_json_rejects_fail_a_strict_run_with_their_batch(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    bad = b'{"type":"RECORD","stream":"s","record":{"id":2,"id":3}}\n'
    result = run_target(target_config(validation_mode="strict"), SCHEMA + FIRST + bad + STATE)
    assert result.returncode == 2
    assert "id failed json" in result.stderr.decode()
    assert emitted_states(result) == []
    assert len(rows(open_catalog(), "s__dead_letter")) == 1


# -- max_record_bytes ---------------------------------------------------------------------

MIB = 1024 * 1024


def _big_line(record_id: int, size: int) -> bytes:
    """A compact RECORD line of exactly ``size`` bytes, newline included."""
    head = b'{"type":"RECORD","stream":"s","record":{"id":%d,"name":"' % record_id
    return head + b"x" * (size - len(head) - 4) + b'"}}\n'


PEAK_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code if code >= 0 else 128 - code)\n")
"""Runs argv[2:] and writes its peak RSS in KiB to argv[1]."""


def _run_streamed(config: Path, parts: list[bytes | tuple[bytes, int]]
                  ) -> tuple[subprocess.CompletedProcess[bytes], int]:
    """Run the target with ``parts`` written to its stdin (``(block, n)``: ``block``
    n times, so a huge line is never built here); return the result and the
    process's peak RSS in bytes.

    The target runs under a small launcher that reports its child's peak: Linux counts
    the memory a process had when it was forked into its peak, so the target forked
    straight from this (by then large) pytest process would report pytest's size."""
    peak_file = config.with_name(f"peak-{uuid.uuid4().hex}")
    proc = subprocess.Popen(
        [sys.executable, "-c", PEAK_LAUNCHER, str(peak_file),
         str(BIN / "target-dativo-iceberg"), "--config", str(config)], cwd=REPO,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    def feed() -> None:
        try:
            for part in parts:
                block, times = part if isinstance(part, tuple) else (part, 1)
                for _ in range(times):
                    proc.stdin.write(block)
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()

    stderr: list[bytes] = []
    threads = [threading.Thread(target=feed),
               threading.Thread(target=lambda: stderr.append(proc.stderr.read()))]
    for thread in threads:
        thread.start()
    stdout = proc.stdout.read()
    for thread in threads:
        thread.join(timeout=300)
    proc.stdout.close()
    proc.stderr.close()
    proc.wait()
    return (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr[0]),
            int(peak_file.read_text()) * 1024)


def test_a_record_over_max_record_bytes_is_dead_lettered_as_a_reference(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    limit = 2 * MIB
    config = target_config(max_record_bytes=limit)
    result, _ = _run_streamed(config, [
        FLAT_SCHEMA, FIRST, _big_line(2, limit), _big_line(3, limit + 1),
        b'{"type":"RECORD","stream":"s","record":{"id":4,"name":"d"}}\n', STATE])
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    assert [r["id"] for r in rows(catalog)] == [1, 2, 4]  # exactly the limit still loads
    (dead,) = rows(catalog, "s__dead_letter")
    assert dead["line_number"] == 4
    assert dead["reasons"] == [{"field": "record", "rule": "maxRecordBytes"}]
    reference = orjson.loads(dead["record_json"])["_dativo_oversized"]
    assert reference["bytes"] == limit + 1
    assert reference["max_record_bytes"] == limit
    assert reference["head"] == '{"id":3,"name":"' + "x" * (1024 - 16)
    assert emitted_states(result) == [{"ok": 1}]


def test_a_huge_line_is_never_held_whole_in_memory(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """A 300 MB line took ~1.8 GB per 200 MB; now the process stays near its baseline
    (a few hundred MB), whatever the line's size."""
    head = b'{"type":"RECORD","stream":"s","record":{"id":2,"name":"'
    result, peak = _run_streamed(target_config(), [
        FLAT_SCHEMA, FIRST, head, (b"x" * MIB, 300), b'"}}\n', STATE])
    assert result.returncode == 0, result.stderr.decode()
    assert peak < 700 * MIB, peak
    catalog = open_catalog()
    assert [r["id"] for r in rows(catalog)] == [1]
    (dead,) = rows(catalog, "s__dead_letter")
    assert orjson.loads(dead["record_json"])["_dativo_oversized"]["bytes"] == (
        len(head) + 300 * MIB + 4)


@pytest.mark.parametrize("line", [
    b'{"type":"STATE","value":{"k":"' + b"x" * (3 * MIB) + b'"}}\n',
    b'{"stream":"s","type":"RECORD","record":{"name":"' + b"x" * (3 * MIB) + b'"}}\n',
], ids=["state", "record-in-another-key-order"])
def test_another_message_over_max_record_bytes_stops_the_run_naming_its_line(
    line: bytes, target_config: Callable[..., Path],
) -> None:
    result, _ = _run_streamed(target_config(max_record_bytes=2 * MIB),
                              [FLAT_SCHEMA, FIRST, STATE, line])
    assert_refused(result, "line 4: a message of 3145")
    assert "is over max_record_bytes (2097152)" in result.stderr.decode()
    assert emitted_states(result) == [{"ok": 1}]


def test_a_big_state_within_the_limit_is_emitted(target_config: Callable[..., Path]) -> None:
    """A 1 MB bookmark passes through; the log redactor scanned the run summary holding it
    in quadratic time (300 KB took 160 s), so this run never ended within the timeout."""
    value = {"k": "x" * MIB}
    result = run_target(target_config(), FLAT_SCHEMA + FIRST + orjson.dumps(
        {"type": "STATE", "value": value}) + b"\n", timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert emitted_states(result) == [value]


@pytest.mark.parametrize("value", [0, 1000, 257 * MIB, "64MB", True])
def test_max_record_bytes_is_validated_up_front(
    value: object, target_config: Callable[..., Path],
) -> None:
    result = run_target(target_config(max_record_bytes=value), FLAT_SCHEMA + FIRST)
    assert_refused(result, "max_record_bytes")


def test_max_record_bytes_is_declared_in_about() -> None:
    about = subprocess.run([str(BIN / "target-dativo-iceberg"), "--about", "--format", "json"],
                           capture_output=True, check=True, cwd=REPO)
    setting = orjson.loads(about.stdout)["settings"]["properties"]["max_record_bytes"]
    assert setting["default"] == 64 * MIB
