"""Issue 12, finding 6: a run that fails part-way never leaves committed rows without
the STATE that covers them (the rerun would load them twice in append mode).

The failure here is a table the target cannot write: a stream whose SCHEMA changes a
column of its existing table incompatibly. It is found on the commit thread, while the
rows of other streams and the STATE before it are on their way to be committed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from tests.conftest import emitted_states, run_target, singer_lines


def schema(stream: str, v_type: str = "integer") -> dict:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["id"],
            "schema": {"properties": {"id": {"type": "integer"}, "v": {"type": v_type}}}}


def record(stream: str, i: int, v: object = 1) -> dict:
    return {"type": "RECORD", "stream": stream, "record": {"id": i, "v": v}}


def state(users: int) -> dict:
    return {"type": "STATE", "value": {"bookmarks": {"users": users}}}


def table_ids(catalog: Catalog, name: str) -> list[int]:
    try:
        table = catalog.load_table(("acme", "default", name))
    except NoSuchTableError:
        return []
    return sorted(table.scan().to_arrow().column("id").to_pylist())


@pytest.fixture
def orders_with_string_v(target_config: Callable[..., Path]) -> Callable[..., Path]:
    """A table ``orders`` whose column ``v`` is a string: a SCHEMA with an integer
    ``v`` cannot be applied to it."""
    result = run_target(target_config(), singer_lines(
        [schema("orders", "string"), record("orders", 0, "x")]))
    assert result.returncode == 0, result.stderr.decode()
    return target_config


@pytest.mark.parametrize("load_method", ["append-only", "upsert"])
def test_rows_before_a_stream_that_cannot_be_loaded_are_committed_with_their_state(
    orders_with_string_v: Callable[..., Path], open_catalog: Callable[[], Catalog],
    load_method: str,
) -> None:
    """5 rows and a STATE, then a stream that fails: the 5 rows and that STATE are
    committed and emitted; the failing stream's rows and the STATE after them are not."""
    messages = [schema("users"), *(record("users", i) for i in range(5)), state(5),
                schema("orders"), record("orders", 1), record("users", 5), state(6)]
    result = run_target(orders_with_string_v(load_method=load_method),
                        singer_lines(messages))
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "acme.default.orders" in stderr and "Cannot change column type" in stderr
    assert "Traceback" not in stderr
    assert emitted_states(result) == [state(5)["value"]]
    catalog = open_catalog()
    assert table_ids(catalog, "users") == list(range(5))
    assert table_ids(catalog, "orders") == [0]


def test_rows_that_share_a_batch_with_a_failing_stream_are_not_committed(
    orders_with_string_v: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """The failing stream's SCHEMA came first, so its records and the users rows are
    drained together: none of them is committed, and no STATE is emitted."""
    messages = [schema("users"), schema("orders"), *(record("users", i) for i in range(5)),
                record("orders", 1), state(5)]
    result = run_target(orders_with_string_v(), singer_lines(messages))
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Cannot change column type" in stderr
    assert emitted_states(result) == []
    catalog = open_catalog()
    assert table_ids(catalog, "users") == []
    assert table_ids(catalog, "orders") == [0]


@pytest.mark.parametrize("load_method", ["append-only", "upsert"])
def test_a_drain_that_fails_while_writing_files_commits_none_of_its_rows(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    load_method: str,
) -> None:
    """users' rows are written, then writing orders' data file fails (its data folder
    is a file): the salvage after the failure must not commit users' rows, whose
    STATE is never emitted."""
    config = target_config(load_method=load_method)
    first = run_target(config, singer_lines([schema("users"), record("users", 0),
                                             schema("orders"), record("orders", 0)]))
    assert first.returncode == 0, first.stderr.decode()
    orders = open_catalog().load_table(("acme", "default", "orders"))
    data = Path(urlparse(orders.location()).path) / "data"
    shutil.rmtree(data)
    data.write_text("not a folder")
    messages = [schema("users"), schema("orders"), *(record("users", i) for i in range(1, 6)),
                record("orders", 1), state(5)]
    result = run_target(config, singer_lines(messages))
    stderr = result.stderr.decode()
    assert result.returncode in (1, 2), stderr
    assert "Traceback" not in stderr
    assert emitted_states(result) == []
    assert table_ids(open_catalog(), "users") == [0]
