"""S3 server-side encryption through catalog properties, against a real S3 server.

pyiceberg's default FileIO (PyArrowFileIO) cannot ask S3 to encrypt; its
FsspecFileIO (``py-io-impl``, needs ``dativo-core[s3-sse]``, i.e. s3fs) sends
``s3.server-side-encryption`` / ``s3.sse-kms-key-id`` on every write. These tests run
the real ``target-dativo-iceberg`` and ``dativo maintain`` against SeaweedFS, whose S3
gateway does SSE-S3 once it has a key-encryption key (``WEED_S3_SSE_KEY`` when it
starts), and ask the server, through an independent client (botocore's HeadObject),
how every object it holds is encrypted: docs/security.md's property block, proven.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from pyiceberg.catalog import load_catalog

from tests.conftest import emitted_states, run_target, singer_lines
from tests.services.s3 import S3Server, running_s3

DATIVO = Path(sys.executable).parent / "dativo"
# The block docs/security.md tells users to add to the target's `catalog` settings.
SSE_S3 = {"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO",
          "s3.server-side-encryption": "AES256"}
SCHEMA = {"type": "SCHEMA", "stream": "users", "key_properties": ["id"],
          "schema": {"type": "object", "properties": {
              "id": {"type": "integer"}, "email": {"type": ["string", "null"]}}}}
STATE = {"bookmarks": {"users": {"id": 3}}}


def messages(*records: dict[str, Any]) -> bytes:
    return singer_lines([SCHEMA, *({"type": "RECORD", "stream": "users", "record": r}
                                   for r in records), {"type": "STATE", "value": STATE}])


@pytest.fixture(scope="module")
def sse_s3() -> Iterator[S3Server]:
    """SeaweedFS with SSE-S3 on: its gateway derives the key-encryption key from
    WEED_S3_SSE_KEY (read once, at start), so the variable is unset again right away."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WEED_S3_SSE_KEY", secrets.token_hex(32))
        with running_s3() as server:
            env.undo()
            yield server


def head_encryption(s3: S3Server, bucket: str) -> dict[str, str | None]:
    """Every object of the bucket -> the ``x-amz-server-side-encryption`` its
    HeadObject answers (None: stored unencrypted), asked through botocore, not the
    s3fs client the target wrote with."""
    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=s3.endpoint, region_name=s3.region,
        aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
    return {key: client.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption")
            for key in s3.list_objects(bucket)}


def catalog_block(s3: S3Server, tmp_path: Path, bucket: str,
                  **extra: str) -> dict[str, str]:
    return {"name": "sse", "type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
            "warehouse": f"s3://{bucket}/lake", **s3.catalog_properties(), **extra}


def dativo(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(DATIVO), *args], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_every_object_of_tables_dead_letters_and_maintenance_is_encrypted(
    sse_s3: S3Server, tmp_path: Path, target_config: Callable[..., Path],
) -> None:
    bucket = sse_s3.create_bucket(f"sse-{uuid.uuid4().hex[:10]}")
    catalog = catalog_block(sse_s3, tmp_path, bucket, **SSE_S3)
    config = target_config(catalog=catalog, load_method="upsert")
    first = run_target(config, messages({"id": 1, "email": "ann@example.com"},
                                        {"id": 2, "email": None}, {"id": "three"}))
    assert first.returncode == 0, first.stderr.decode()
    second = run_target(config, messages({"id": 1, "email": "ann@example.org"},
                                         {"id": 3, "email": "cy@example.com"}))
    assert second.returncode == 0, second.stderr.decode()
    assert emitted_states(first) == emitted_states(second) == [STATE]
    # compaction writes the only data file of `users` left after the expiry
    compacted = dativo("maintain", "compact", "--config", str(config), "--all")
    assert compacted.returncode == 0, compacted.stderr.decode()
    assert b"acme.default.users: 2 -> 1 data file(s)" in compacted.stdout
    expired = dativo("maintain", "expire-snapshots", "--older-than", "0s",
                     "--config", str(config), "--all")
    assert expired.returncode == 0, expired.stderr.decode()
    assert b"acme.default.users: expired 2 snapshot(s)" in expired.stdout
    # orphan listing goes through the same FileIO (fsspec's, wrapped for pyarrow)
    orphan = f"lake/acme.default/users/data/orphan-{uuid.uuid4().hex}.parquet"
    sse_s3.filesystem().open_output_stream(f"{bucket}/{orphan}").close()
    removed = dativo("maintain", "remove-orphans", "--older-than", "0s",
                     "--config", str(config), "--all")
    assert removed.returncode == 0, removed.stderr.decode()
    assert b"acme.default.users: deleted 1 orphan data file(s)" in removed.stdout, removed.stdout
    assert orphan not in head_encryption(sse_s3, bucket)

    encryption = head_encryption(sse_s3, bucket)
    for table in ("users", "users__dead_letter"):  # every kind of file, in both tables
        folder = f"lake/acme.default/{table}/"
        names = [k.removeprefix(folder) for k in encryption if k.startswith(folder)]
        for kind in (r"data/.*\.parquet", r"metadata/.*\.metadata\.json",
                     r"metadata/snap-.*\.avro", r"metadata/.*-m\d+\.avro"):
            assert any(re.fullmatch(kind, name) for name in names), (kind, names)
    assert len([k for k in encryption
                if re.fullmatch(r"lake/acme\.default/users/data/.*\.parquet", k)]) == 1
    assert {key: sse for key, sse in encryption.items() if sse != "AES256"} == {}

    # SSE-S3 is transparent to readers: pyiceberg's default FileIO, which cannot ask
    # for encryption, reads the encrypted objects back.
    reader = {k: v for k, v in catalog.items() if k not in SSE_S3}
    opened = load_catalog(reader.pop("name"), **reader)
    rows = opened.load_table(("acme", "default", "users")).scan().to_arrow().to_pylist()
    assert sorted((r["id"], r["email"]) for r in rows) == [
        (1, "ann@example.org"), (2, None), (3, "cy@example.com")]
    dead = opened.load_table(("acme", "default", "users__dead_letter")).scan().to_arrow()
    assert dead.num_rows == 1


def test_markdown_kv_raw_files_are_encrypted(
    sse_s3: S3Server, tmp_path: Path, target_config: Callable[..., Path],
) -> None:
    bucket = sse_s3.create_bucket(f"sse-md-{uuid.uuid4().hex[:10]}")
    config = target_config(catalog=catalog_block(sse_s3, tmp_path, bucket, **SSE_S3),
                           format="markdown_kv", markdown_kv={"storage": "raw_file"})
    result = run_target(config, messages({"id": 1, "email": "ann@example.com"},
                                         {"id": 2, "email": "bo@example.com"}))
    assert result.returncode == 0, result.stderr.decode()
    encryption = head_encryption(sse_s3, bucket)
    assert sorted(k for k in encryption if k.endswith(".md")) == [
        "lake/markdown_kv/acme/users/1.md", "lake/markdown_kv/acme/users/2.md"]
    assert {key: sse for key, sse in encryption.items() if sse != "AES256"} == {}


def test_without_the_properties_the_same_server_stores_objects_unencrypted(
    sse_s3: S3Server, tmp_path: Path, target_config: Callable[..., Path],
) -> None:
    """The control: the encryption seen above comes from the catalog properties, not
    from the server."""
    bucket = sse_s3.create_bucket(f"plain-{uuid.uuid4().hex[:10]}")
    config = target_config(catalog=catalog_block(sse_s3, tmp_path, bucket))
    result = run_target(config, messages({"id": 1, "email": "ann@example.com"}))
    assert result.returncode == 0, result.stderr.decode()
    encryption = head_encryption(sse_s3, bucket)
    assert any(k.endswith(".parquet") for k in encryption)
    assert set(encryption.values()) == {None}


def test_sse_kms_that_the_server_cannot_honour_fails_the_run_writing_nothing(
    sse_s3: S3Server, tmp_path: Path, target_config: Callable[..., Path],
) -> None:
    """This SeaweedFS has no KMS: it refuses ``aws:kms`` writes, and the target stops
    with one line and no STATE rather than storing the data unencrypted."""
    bucket = sse_s3.create_bucket(f"kms-{uuid.uuid4().hex[:10]}")
    catalog = catalog_block(sse_s3, tmp_path, bucket, **{
        **SSE_S3, "s3.server-side-encryption": "aws:kms",
        "s3.sse-kms-key-id": "alias/dativo-warehouse"})
    result = run_target(target_config(catalog=catalog), messages({"id": 1}))
    assert result.returncode == 2
    assert emitted_states(result) == []
    last = result.stderr.decode().strip().splitlines()[-1]
    assert "catalog.warehouse: table acme.default." in last
    assert f"cannot be read or written in s3://{bucket}/lake" in last
    assert sse_s3.list_objects(bucket) == []
    assert sse_s3.secret_key not in result.stderr.decode()


def test_the_property_block_in_docs_security_md_is_the_one_tested() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    for key, value in SSE_S3.items():
        assert f'"{key}": "{value}"' in doc
