"""The message loop's block splitting: every line reaches the loader once, in order,
with its own line number, whatever the block size and however the lines are cut."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from target_dativo_iceberg.config_schema import DEFAULT_MAX_RECORD_BYTES
from target_dativo_iceberg.message_loop import run_message_loop


class RecordingLoader:
    """Stands in for the Loader: records what the loop hands over, line by line."""

    settings = SimpleNamespace(max_record_bytes=DEFAULT_MAX_RECORD_BYTES)
    progress = None  # no progress lines

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_schema(self, stream: str, schema: dict[str, Any], keys: list[str]) -> None:
        self.events.append(("SCHEMA", stream))

    def on_records(self, stream: str, lines: bytes, first_line: int, count: int) -> None:
        split = lines.splitlines(keepends=True)
        assert len(split) == count
        for offset, line in enumerate(split):
            assert line.endswith(b"\n")
            record = orjson.loads(line)["record"]
            self.events.append(("RECORD", stream, first_line + offset, record))

    def on_state(self, value: Any) -> None:
        self.events.append(("STATE", value))

    def on_activate_version(self, stream: str, version: int) -> None:
        self.events.append(("ACTIVATE_VERSION", stream))

    def flush_due(self) -> float | None:
        return None  # no flush timer: nothing is held

    def flush(self) -> None:
        raise AssertionError("flush() without a due timer")


_MESSAGE = st.one_of(
    st.builds(lambda s, i: ("RECORD", s, i), st.sampled_from(["a", "bb", "a-b"]),
              st.integers(0, 10**6)),
    st.builds(lambda i: ("STATE", i), st.integers(0, 100)),
    st.just(("BLANK",)),
    st.builds(lambda s, i: ("SPACED", s, i), st.sampled_from(["a", "bb"]),
              st.integers(0, 10)),
)


def _render(message: tuple[Any, ...]) -> bytes:
    kind = message[0]
    if kind == "RECORD":  # compact, as singer-sdk writes it: the fast path
        return orjson.dumps({"type": "RECORD", "stream": message[1],
                             "record": {"id": message[2]}}) + b"\n"
    if kind == "SPACED":  # another tap's formatting: the per-line path
        return (b'{"type": "RECORD", "stream": "%s", "record": {"id": %d}}\n'
                % (message[1].encode(), message[2]))
    if kind == "STATE":
        return orjson.dumps({"type": "STATE", "value": {"n": message[1]}}) + b"\n"
    return b"\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(_MESSAGE, max_size=40), st.integers(1, 300), st.booleans())
def test_every_line_arrives_once_in_order_with_its_line_number(
    messages: list[tuple[Any, ...]], block_bytes: int, trailing_newline: bool
) -> None:
    schemas = [{"type": "SCHEMA", "stream": s, "schema": {"type": "object"}}
               for s in ("a", "bb", "a-b")]
    data = b"".join(orjson.dumps(m) + b"\n" for m in schemas)
    data += b"".join(_render(m) for m in messages)
    if not trailing_newline and data.endswith(b"}\n"):
        data = data[:-1]
    expected: list[tuple[Any, ...]] = [("SCHEMA", s["stream"]) for s in schemas]
    for line_number, message in enumerate(messages, start=len(schemas) + 1):
        if message[0] in ("RECORD", "SPACED"):
            expected.append(("RECORD", message[1], line_number, {"id": message[2]}))
        elif message[0] == "STATE":
            expected.append(("STATE", {"n": message[1]}))
    loader = RecordingLoader()
    lines = run_message_loop(io.BufferedReader(io.BytesIO(data)), loader,  # type: ignore[arg-type]
                             block_bytes=block_bytes)
    assert loader.events == expected
    assert lines == len(schemas) + len(messages)
