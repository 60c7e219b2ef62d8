"""A throwaway Prometheus Pushgateway (Debian's ``prometheus-pushgateway``) on a free port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.services.ports import free_port, wait_for_port


@contextmanager
def running_pushgateway() -> Iterator[str]:
    """Yield the gateway's base URL (``http://127.0.0.1:<port>``)."""
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        raise RuntimeError("prometheus-pushgateway is not installed; `.ci/run` installs the "
                           "Debian package prometheus-pushgateway")
    root = Path(tempfile.mkdtemp(prefix="dativo-pushgateway-"))
    port = free_port()
    with open(root / "log", "wb") as log:
        proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait_for_port(port, what="Pushgateway")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
