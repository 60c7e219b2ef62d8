"""The pgoutput decoder on payloads laid out as PostgreSQL's protocol docs specify.

The integration tests run it against a real server; these pin each message layout
(including the rarer ones: old tuples, unchanged TOAST values, truncate, messages)
and the error for a payload that is cut short.
"""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from dativo.errors import CodecError
from tap_dativo_postgres import pgoutput


def _text(value: str | None) -> bytes:
    if value is None:
        return b"n"
    data = value.encode()
    return b"t" + struct.pack("!i", len(data)) + data


def _tuple(*values: str | None) -> bytes:
    return struct.pack("!h", len(values)) + b"".join(_text(v) for v in values)


def test_begin_relation_and_commit() -> None:
    micros = 86_400 * 1_000_000 + 5  # one day and 5 µs after 2000-01-01
    begin = pgoutput.decode(b"B" + struct.pack("!qqI", 0x1_0000_0010, micros, 77))
    assert begin == pgoutput.Begin(final_lsn=0x1_0000_0010, xid=77, commit_time=dt.datetime(
        2000, 1, 2, 0, 0, 0, 5, tzinfo=dt.timezone.utc))

    relation = pgoutput.decode(
        b"R" + struct.pack("!I", 16384) + b"public\0accounts\0" + b"d" + struct.pack("!h", 2)
        + struct.pack("!b", 1) + b"id\0" + struct.pack("!Ii", 23, -1)
        + struct.pack("!b", 0) + b"name\0" + struct.pack("!Ii", 25, -1))
    assert relation == pgoutput.Relation(16384, "public", "accounts", "d", (
        pgoutput.Column("id", 23, True), pgoutput.Column("name", 25, False)))

    commit = pgoutput.decode(b"C" + struct.pack("!bqqq", 0, 100, 120, micros))
    assert commit == pgoutput.Commit(commit_lsn=100, end_lsn=120,
                                     commit_time=begin.commit_time)  # type: ignore[union-attr]


def test_row_changes_with_nulls_old_keys_and_unchanged_toast() -> None:
    insert = pgoutput.decode(b"I" + struct.pack("!I", 7) + b"N" + _tuple("1", None, "é"))
    assert insert == pgoutput.Change("I", 7, ("1", None, "é"), None, False)

    toast = struct.pack("!h", 2) + _text("1") + b"u"
    update = pgoutput.decode(b"U" + struct.pack("!I", 7) + b"K" + _tuple("9") + b"N" + toast)
    assert update == pgoutput.Change("U", 7, ("1", pgoutput.UNCHANGED_TOAST), ("9",), True)

    full = pgoutput.decode(b"U" + struct.pack("!I", 7) + b"O" + _tuple("1", "old") + b"N"
                           + _tuple("1", "new"))
    assert full == pgoutput.Change("U", 7, ("1", "new"), ("1", "old"), False)

    delete = pgoutput.decode(b"D" + struct.pack("!I", 7) + b"K" + _tuple("3", None))
    assert delete == pgoutput.Change("D", 7, None, ("3", None), True)


def test_truncate_message_and_unknown_kinds() -> None:
    assert pgoutput.decode(b"T" + struct.pack("!ibII", 2, 0, 7, 8)) == pgoutput.Truncate((7, 8))
    message = pgoutput.decode(b"M" + struct.pack("!bq", 0, 4242) + b"dativo\0"
                              + struct.pack("!i", 3) + b"abc")
    assert message == pgoutput.Message(lsn=4242, prefix="dativo", content=b"abc")
    assert pgoutput.decode(b"Y" + b"\0" * 8) == pgoutput.Ignored("Y")


def test_cut_payload_is_a_codec_error_naming_the_message_kind() -> None:
    with pytest.raises(CodecError, match=r"pgoutput: cannot decode a 'I' message"):
        pgoutput.decode(b"I" + struct.pack("!I", 7) + b"N" + struct.pack("!h", 1) + b"t\0\0")


def test_lsn_text_round_trips() -> None:
    assert pgoutput.lsn_text(0x1_0000_00AB) == "1/AB"
    assert pgoutput.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert pgoutput.parse_lsn(pgoutput.lsn_text(123456789012)) == 123456789012
