"""singer-sdk's own sample target inputs, fed to target-dativo-iceberg one file at a time.

They are the edge cases other Singer targets are tested against (odd names, schema
changes, missing fields, protocol errors). Every file must either account for each
RECORD as a row or a dead letter, or stop with one clear error line. The expectations
below are explicit per file, so a change in behaviour, or a new file in a singer-sdk
upgrade, fails here instead of passing unnoticed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

from dativo.iceberg.tables import all_tables
from dativo.names import table_name
from tests.conftest import emitted_states, read_table, run_target

STREAMS_DIR = Path(str(files("singer_sdk.testing.target_test_streams")))
SAMPLES = sorted(p.name for p in STREAMS_DIR.glob("*.singer"))
NAMESPACE = ("acme", "default")

# File -> the one error line the target must stop with (exit 2).
EXPECTED_ERRORS = {
    "invalid_schema.singer":
        "line 1: SCHEMA for stream 'test_invalid_schema' is unusable: "
        "contract for 'test_invalid_schema' has no columns",
    "record_before_schema.singer":
        "line 1: RECORD for stream 'test_record_before_schema' arrived before its SCHEMA",
}

# File -> records the contract (here: the Singer SCHEMA) rejects into the dead letter.
EXPECTED_REJECTED = {
    "array_data.singer": 0,
    "camelcase.singer": 0,
    "camelcase_complex_schema.singer": 0,  # SCHEMA messages only
    "duplicate_records.singer": 0,
    "encoded_string_data.singer": 0,
    "multiple_state_messages.singer": 0,
    "no_primary_keys.singer": 0,
    "no_primary_keys_append.singer": 0,
    "optional_attributes.singer": 0,
    "pk_updates.singer": 0,
    "record_missing_fields.singer": 0,
    "record_missing_key_property.singer": 1,  # id missing: id failed required
    "record_missing_required_property.singer": 1,  # id missing: id failed required
    "schema_no_properties.singer": 0,
    "schema_updates.singer": 0,
    "special_chars_in_attributes.singer": 0,
    "user_location_data.singer": 0,
    "user_location_upsert_data.singer": 0,
}


def record_counts(data: bytes) -> Counter[str]:
    """RECORD messages per stream, counted from the file itself."""
    counts: Counter[str] = Counter()
    for line in data.splitlines():
        if line.strip():
            message = json.loads(line)
            if message["type"] == "RECORD":
                counts[message["stream"]] += 1
    return counts


def last_state(data: bytes) -> object:
    states = [json.loads(line)["value"] for line in data.splitlines()
              if line.strip() and json.loads(line)["type"] == "STATE"]
    return states[-1] if states else None


def test_every_sample_has_an_expected_outcome() -> None:
    assert len(SAMPLES) >= 20, STREAMS_DIR
    assert sorted({*EXPECTED_ERRORS, *EXPECTED_REJECTED}) == SAMPLES
    assert not set(EXPECTED_ERRORS) & set(EXPECTED_REJECTED)


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_is_loaded_or_refused_with_one_clear_line(
    sample: str, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    data = (STREAMS_DIR / sample).read_bytes()
    result = run_target(target_config(tenant_id="acme", validation_mode="warn"), data)
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr

    if sample in EXPECTED_ERRORS:
        assert result.returncode == 2, stderr
        errors = [line for line in stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1, stderr
        assert EXPECTED_ERRORS[sample] in errors[0]
        assert result.stdout == b""
        return

    assert result.returncode == 0, stderr
    catalog = open_catalog()
    counts = record_counts(data)
    tables = {name: (*NAMESPACE, table_name(name)) for name in counts}
    dead_tables = {name: (*t[:-1], t[-1] + "__dead_letter") for name, t in tables.items()}
    quality = {(*t[:-1], t[-1] + "__quality") for t in tables.values()}  # each load's profile
    existing = set(all_tables(catalog))
    assert existing <= {*tables.values(), *dead_tables.values(), *quality}
    assert {t for t in tables.values() if t in existing} <= {
        (*t[:-1], t[-1].removesuffix("__quality")) for t in existing & quality}

    def rows(identifier: tuple[str, ...]) -> int:
        return read_table(catalog, identifier).num_rows if identifier in existing else 0

    landed = {name: rows(tables[name]) for name in counts}
    dead = {name: rows(dead_tables[name]) for name in counts}
    assert {name: landed[name] + dead[name] for name in counts} == dict(counts)
    assert sum(dead.values()) == EXPECTED_REJECTED[sample]
    # The target echoes the input's last STATE once everything before it is committed.
    expected_state = last_state(data)
    assert emitted_states(result)[-1:] == ([] if expected_state is None else [expected_state])
