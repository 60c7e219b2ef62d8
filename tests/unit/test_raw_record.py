"""Dead-letter rows keep the record exactly as the tap wrote it."""

from __future__ import annotations

import pytest

from target_dativo_iceberg.batches import raw_record_json


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"type":"RECORD","stream":"s","record":{"v":-20.00,"n":1e3}}\n',
         '{"v":-20.00,"n":1e3}'),
        ('{"record": {"big": 12345678901234567890.123456789} , "type": "RECORD"}',
         '{"big": 12345678901234567890.123456789}'),
        ('{"stream":"s\\"record\\":","x":{"record":[1]},"record":{"a":"\\u00e9"}}',
         '{"a":"\\u00e9"}'),
        ('  {"type":"RECORD","record":{"nested":{"k":[1,{"z":null}]}},"time_extracted":"t"}',
         '{"nested":{"k":[1,{"z":null}]}}'),
    ],
)
def test_record_text_is_kept_byte_for_byte(line: str, expected: str) -> None:
    assert raw_record_json(line) == expected


@pytest.mark.parametrize("line", ['[1]', '{"type":"RECORD"}', '{"record" 1}'])
def test_lines_without_a_record_member_are_refused(line: str) -> None:
    with pytest.raises(ValueError):
        raw_record_json(line)
