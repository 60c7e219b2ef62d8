"""Hostile BATCH manifests (issue 12, finding 3): the target reads BATCH files only
under ``batch_roots``, only regular files, only up to ``batch_max_file_bytes``.

Every refusal is one line naming the input line, the manifest entry and the setting
to change, exit 2, before a byte of the file is read: nothing lands in the table or
the dead-letter table, and no STATE is emitted. Each case runs the real target
process, with a timeout, so a FIFO or a device cannot hang the suite.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.fs as fs
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from target_dativo_iceberg.batch_roots import BatchFilePolicy, RefusedFile
from target_dativo_iceberg.batch_sources import open_input, open_native
from tests.conftest import BIN, emitted_states, read_table, run_target
from tests.services.s3 import S3Server

TABLE = ("acme", "default", "customers")
DEAD = ("acme", "default", "customers__dead_letter")
SCHEMA = {"type": "SCHEMA", "stream": "customers", "key_properties": ["customer_id"],
          "schema": {"type": "object", "properties": {
              "customer_id": {"type": "integer"}, "name": {"type": ["string", "null"]}}}}
STATE = {"type": "STATE", "value": {"bookmarks": {"customers": {"n": 1}}}}
SECRET = "s3cr3t-batch-paths-7351"
# Generous: a refusal takes the target's start-up time; the old code hung here.
TIMEOUT = 60.0


def rows(*ids: int, tenant: str = "acme") -> list[dict[str, Any]]:
    return [{"customer_id": i, "name": f"{tenant} customer {i}"} for i in ids]


def jsonl(path: Path, records: list[dict[str, Any]], *, gzipped: bool = False) -> Path:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def parquet(path: Path, records: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def messages(uri: str, fmt: str) -> bytes:
    batch = {"type": "BATCH", "stream": "customers",
             "encoding": {"format": fmt, "compression": "none"}, "manifest": [uri]}
    return b"".join(orjson.dumps(m) + b"\n" for m in (SCHEMA, batch, STATE))


def row_count(catalog: Catalog, identifier: tuple[str, ...]) -> int:
    try:
        return read_table(catalog, identifier).num_rows
    except NoSuchTableError:
        return 0


@dataclass
class Place:
    """Where a case runs: the target's working directory (whose ./output/batches is
    the default root), its config file (holding a secret) and a foreign tenant's
    Parquet file outside every root."""

    tmp: Path
    work: Path
    root: Path
    config: Path
    foreign: Path


@pytest.fixture
def place(tmp_path: Path, target_config: Callable[..., Path],
          catalog_props: dict[str, str]) -> Place:
    work = tmp_path / "work"
    root = work / "output" / "batches"
    root.mkdir(parents=True)
    config = target_config(catalog={**catalog_props, "s3.secret-access-key": SECRET})
    foreign = tmp_path / "tenants" / "beta" / "customers.parquet"
    foreign.parent.mkdir(parents=True)
    parquet(foreign, rows(901, 902, tenant="beta"))
    return Place(tmp_path, work, root, config, foreign)


def _fifo(p: Place) -> tuple[str, str]:
    os.mkfifo(p.root / "pipe.jsonl")
    return str(p.root / "pipe.jsonl"), "jsonl"


def _dev_zero_link(p: Place) -> tuple[str, str]:
    (p.root / "zero.jsonl").symlink_to("/dev/zero")
    return str(p.root / "zero.jsonl"), "jsonl"


def _directory(p: Place) -> tuple[str, str]:
    (p.root / "dir.parquet").mkdir()
    return (p.root / "dir.parquet").as_uri(), "parquet"


def _link_to_config(p: Place) -> tuple[str, str]:
    (p.root / "part-1.jsonl").symlink_to(p.config)
    return (p.root / "part-1.jsonl").as_uri(), "jsonl"


def _linked_dir(p: Place) -> tuple[str, str]:
    (p.root / "sub").symlink_to(p.tmp)
    return str(p.root / "sub" / p.config.name), "jsonl"


def _remote_host(p: Place) -> tuple[str, str]:
    good = jsonl(p.root / "good.jsonl", rows(1))
    return f"file://files.example.com{good}", "jsonl"


# case -> (manifest entry, format) built in the case's Place; the setting to change.
HOSTILE: dict[str, tuple[Callable[[Place], tuple[str, str]], str]] = {
    "own config, absolute path": (lambda p: (str(p.config), "jsonl"), "batch_roots"),
    "own config, file URI": (lambda p: (p.config.as_uri(), "jsonl"), "batch_roots"),
    "own config, ../ from the relative default root": (
        lambda p: (f"output/batches/../../../{p.config.name}", "jsonl"), "batch_roots"),
    "own config, ../ in a file URI under the root": (
        lambda p: (f"{p.root.as_uri()}/../../../{p.config.name}", "jsonl"), "batch_roots"),
    "own config, %2e%2e in a file URI": (
        lambda p: (f"{p.root.as_uri()}/%2e%2e/%2E%2E/%2e%2e/{p.config.name}", "jsonl"),
        "batch_roots"),
    "own config, symlink inside the root": (_link_to_config, "batch_roots"),
    "own config, symlinked directory inside the root": (_linked_dir, "batch_roots"),
    "another tenant's Parquet file": (lambda p: (str(p.foreign), "parquet"), "batch_roots"),
    "/etc/shadow": (lambda p: ("/etc/shadow", "jsonl"), "batch_roots"),
    "/proc/self/environ": (lambda p: ("/proc/self/environ", "jsonl"), "batch_roots"),
    "file:///proc/self/environ": (lambda p: ("file:///proc/self/environ", "jsonl"),
                                  "batch_roots"),
    "/dev/zero": (lambda p: ("/dev/zero", "jsonl"), "batch_roots"),
    "symlink to /dev/zero inside the root": (_dev_zero_link, "batch_roots"),
    "FIFO inside the root": (_fifo, "batch_roots"),
    "directory inside the root": (_directory, "batch_roots"),
    "file URI with a remote host": (_remote_host, "batch_roots"),
    "http://": (lambda p: ("http://127.0.0.1:9/customers.jsonl", "jsonl"), "batch_roots"),
    "ftp://": (lambda p: ("ftp://127.0.0.1:9/customers.parquet", "parquet"), "batch_roots"),
    "s3:// not listed in batch_roots": (lambda p: ("s3://batches/part-1.parquet", "parquet"),
                                        "batch_roots"),
}


def assert_refused(result: subprocess.CompletedProcess[bytes], shown: str, setting: str,
                   catalog: Catalog) -> None:
    """Exit 2, one line naming the BATCH line, the file and the setting; nothing read."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "BATCH manifest file" in line]
    assert len(errors) == 1, stderr
    assert "line 2: stream 'customers'" in errors[0]
    assert shown in errors[0] and setting in errors[0], errors[0]
    assert SECRET not in stderr
    assert emitted_states(result) == []
    assert row_count(catalog, TABLE) == 0
    assert row_count(catalog, DEAD) == 0


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_manifest_entry_is_refused_before_reading(
    case: str, place: Place, open_catalog: Callable[[], Catalog]
) -> None:
    build, setting = HOSTILE[case]
    uri, fmt = build(place)
    result = run_target(place.config, messages(uri, fmt), cwd=place.work, timeout=TIMEOUT)
    assert_refused(result, uri, setting, open_catalog())


def test_one_refused_entry_loads_nothing_of_its_message(
    place: Place, open_catalog: Callable[[], Catalog]
) -> None:
    """Every entry is admitted before any file of the message is read: a good file
    before a refused one does not load."""
    good = jsonl(place.root / "good.jsonl", rows(1, 2))
    batch = {"type": "BATCH", "stream": "customers", "manifest": [str(good), "/etc/shadow"],
             "encoding": {"format": "jsonl", "compression": "none"}}
    stdin = b"".join(orjson.dumps(m) + b"\n" for m in (SCHEMA, batch, STATE))
    result = run_target(place.config, stdin, cwd=place.work, timeout=TIMEOUT)
    assert_refused(result, "/etc/shadow", "batch_roots", open_catalog())


@pytest.mark.parametrize("swap", ["symlink", "FIFO", "bigger file", "directory symlink"])
def test_a_file_swapped_after_admission_is_not_read(tmp_path: Path, swap: str) -> None:
    """Between the check and the open, the file (or a directory on its path) becomes a
    symlink out of the root, a FIFO or a bigger file: the open refuses it (and a FIFO
    does not block it)."""
    root = tmp_path / "batches"
    (root / "sub").mkdir(parents=True)
    secret = tmp_path / "secret.jsonl"
    jsonl(secret, rows(666))
    (tmp_path / "elsewhere").mkdir()
    jsonl(tmp_path / "elsewhere" / "part.jsonl", rows(666))
    part = jsonl(root / "sub" / "part.jsonl", rows(1))
    source = BatchFilePolicy.from_config([str(root)], 4096).admit(str(part))
    if swap == "directory symlink":
        (root / "sub").rename(root / "old")
        (root / "sub").symlink_to(tmp_path / "elsewhere")
    else:
        part.unlink()
        if swap == "symlink":
            part.symlink_to(secret)
        elif swap == "FIFO":
            os.mkfifo(part)
        else:
            jsonl(part, rows(*range(1000)))
    for opener in (open_input, open_native):
        with pytest.raises(RefusedFile, match=r"batch_roots|batch_max_file_bytes"):
            opener(source)


def test_a_root_leading_into_proc_still_reads_no_proc_file(
    place: Place, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """A configured root that is a symlink into /proc passes the config check (it names
    another path), but /proc files are no regular files to the target."""
    (place.tmp / "proc-link").symlink_to("/proc/self")
    config = target_config(batch_roots=[str(place.tmp / "proc-link")])
    uri = str(place.tmp / "proc-link" / "environ")
    result = run_target(config, messages(uri, "jsonl"), cwd=place.work, timeout=TIMEOUT)
    assert_refused(result, uri, "batch_roots", open_catalog())
    assert "pseudo file system" in result.stderr.decode()


def test_file_over_the_size_cap_is_refused(
    place: Place, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """A file bigger than batch_max_file_bytes on storage is refused before a byte of
    it is read."""
    cap = 64 * 1024
    config = target_config(batch_max_file_bytes=cap)
    big = jsonl(place.root / "big.jsonl", rows(*range(1, 3000)))
    assert big.stat().st_size > cap
    result = run_target(config, messages(str(big), "jsonl"), cwd=place.work, timeout=TIMEOUT)
    assert_refused(result, str(big), "batch_max_file_bytes", open_catalog())


@pytest.mark.parametrize("claimed", ["honest", "small (read whole)", "smaller than the file"])
def test_gzip_inflating_past_the_cap_loads_nothing(
    place: Place, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    claimed: str,
) -> None:
    """A small gzip file inflating past batch_max_file_bytes is refused, and none of
    its rows load, whatever its trailer claims (it may lie): the inflater stops at the
    cap, and a file of unknown size is spooled whole before its first batch."""
    cap = 10 * 1024 * 1024  # more than one inflate step (8 MB): batches spool first
    config = target_config(batch_max_file_bytes=cap, batch_size_rows=1000,
                           commit_interval_seconds=0)
    bomb = jsonl(place.root / "bomb.jsonl.gz", rows(*[7] * 400_000), gzipped=True)
    size = bomb.stat().st_size
    assert size < 1024 * 1024
    trailer = {"honest": bomb.read_bytes()[-4:], "small (read whole)": size + 1,
               "smaller than the file": 100}[claimed]
    if isinstance(trailer, int):
        bomb.write_bytes(bomb.read_bytes()[:-4] + trailer.to_bytes(4, "little"))
    result = run_target(config, messages(bomb.as_uri(), "jsonl"), cwd=place.work,
                        timeout=TIMEOUT)
    assert_refused(result, bomb.as_uri(), "batch_max_file_bytes", open_catalog())


def test_files_under_the_roots_still_load(
    place: Place, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """The default root (relative to the target's working directory, here as a relative
    path and a file URI), and a configured root reached through a symlink, load."""
    relative = jsonl(place.root / "part-1.jsonl", rows(1, 2))
    as_uri = parquet(place.root / "part-2.parquet", rows(3))
    data = place.tmp / "shared" / "batches"
    data.mkdir(parents=True)
    linked = place.tmp / "batches-link"
    linked.symlink_to(data)
    other = parquet(data / "part-3.parquet", rows(4, 5))
    batches = [(str(relative.relative_to(place.work)), "jsonl"), (as_uri.as_uri(), "parquet")]
    sent = [SCHEMA, *({"type": "BATCH", "stream": "customers", "manifest": [uri],
                       "encoding": {"format": fmt, "compression": "none"}}
                      for uri, fmt in batches), STATE]
    stdin = b"".join(orjson.dumps(m) + b"\n" for m in sent)
    result = run_target(target_config(), stdin, cwd=place.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [STATE["value"]]

    config = target_config(batch_roots=[str(linked), "./output/batches"])
    result = run_target(config, messages(str(linked / other.name), "parquet"),
                        cwd=place.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    assert sorted(read_table(catalog, TABLE).column("customer_id").to_pylist()) == [
        1, 2, 3, 4, 5]
    assert row_count(catalog, DEAD) == 0

    # A configured list replaces the default: ./output/batches is then refused.
    config = target_config(batch_roots=[str(linked)])
    result = run_target(config, messages(str(relative), "jsonl"), cwd=place.work,
                        timeout=TIMEOUT)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "is outside batch_roots" in stderr, stderr


@pytest.mark.parametrize(("value", "error"), [
    ("output/batches", "is not of type 'array', 'null' in config['batch_roots']"),
    ([""], "batch_roots: '' is not a directory path"),
    (["http://example.com/batches"], "batch_roots: 'http://example.com/batches' has the "
                                     "unsupported scheme 'http'"),
    (["s3://"], "batch_roots: 's3://' names no bucket"),
    (["s3://bucket/a/../b"], "batch_roots: 's3://bucket/a/../b' has a '..'"),
    (["/"], "batch_roots: '/' would admit every file"),
])
def test_bad_batch_roots_name_the_key(
    place: Place, target_config: Callable[..., Path], value: Any, error: str
) -> None:
    result = run_target(target_config(batch_roots=value), messages("x", "jsonl"),
                        cwd=place.work, timeout=TIMEOUT)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert error in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("value", [0, -1, "1000", True])
def test_bad_batch_max_file_bytes_names_the_key(
    place: Place, target_config: Callable[..., Path], value: Any
) -> None:
    result = run_target(target_config(batch_max_file_bytes=value), messages("x", "jsonl"),
                        cwd=place.work, timeout=TIMEOUT)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "batch_max_file_bytes" in stderr and "Traceback" not in stderr


def test_about_declares_the_settings() -> None:
    about = subprocess.run([str(BIN / "target-dativo-iceberg"), "--about", "--format", "json"],
                           capture_output=True, timeout=TIMEOUT, check=True)
    properties = json.loads(about.stdout)["settings"]["properties"]
    assert properties["batch_roots"]["type"] in ("array", ["array", "null"])
    assert "batch_max_file_bytes" in properties


# -- s3:// --------------------------------------------------------------------------
@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_REGION", s3.region)
    return s3


def _put_parquet(s3: S3Server, key: str, records: list[dict[str, Any]]) -> None:
    with s3.filesystem().open_output_stream(key) as out:
        pq.write_table(pa.Table.from_pylist(records), out)


@pytest.mark.parametrize(("trick", "shown"), [
    ("s3://{b}-evil/batches/part.parquet", None),  # a bucket sharing the prefix
    ("s3://{b}/batches-evil/part.parquet", None),  # a key prefix sharing the prefix
    ("s3://{b}/batches/../other/part.parquet", None),
    ("s3://{b}/batches/%2E%2E/other/part.parquet", None),
    ("s3://{b}/batches//../other/part.parquet", None),
    ("s3://{b}/batches/part.parquet?endpoint_override=127.0.0.1:9", None),
    ("s3://AKIAEXAMPLE:" + SECRET + "@{b}/batches/part.parquet",
     "s3://***@{b}/batches/part.parquet"),
])
def test_s3_prefix_tricks_are_refused(
    s3_env: S3Server, place: Place, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog], trick: str, shown: str | None,
) -> None:
    bucket = "hbp-acme"
    if s3_env.filesystem().get_file_info(bucket).type != fs.FileType.Directory:
        s3_env.create_bucket(bucket)
        s3_env.create_bucket(f"{bucket}-evil")
        for key in (f"{bucket}-evil/batches/part.parquet", f"{bucket}/batches-evil/part.parquet",
                    f"{bucket}/other/part.parquet"):
            _put_parquet(s3_env, key, rows(901, 902, tenant="beta"))
        _put_parquet(s3_env, f"{bucket}/batches/part.parquet", rows(1))
    config = target_config(batch_roots=[f"s3://{bucket}/batches"])
    uri = trick.format(b=bucket)
    result = run_target(config, messages(uri, "parquet"), cwd=place.work, timeout=TIMEOUT)
    assert_refused(result, (shown or trick).format(b=bucket), "batch_roots", open_catalog())

    # The same root admits its own files (also written as s3://bucket/batches/).
    config = target_config(batch_roots=[f"s3://{bucket}/batches/"])
    result = run_target(config, messages(f"s3://{bucket}/batches/part.parquet", "parquet"),
                        cwd=place.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode()
    assert read_table(open_catalog(), TABLE).column("customer_id").to_pylist() == [1]
