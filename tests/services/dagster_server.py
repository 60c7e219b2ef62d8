"""A Dagster server (``dagster dev`` or ``dagster-webserver``) started by a test in its
own process group: wait until it answers, talk GraphQL to it, stop it and its children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def wait_for_server(url: str, server: subprocess.Popen[bytes], log: Path,
                    timeout: float = 180) -> None:
    """Poll ``url`` until it answers 200; fail at once if the server process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the Dagster server exited {server.returncode}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the Dagster server did not answer {url} within {timeout:.0f} s:\n"
                         f"{log.read_text(errors='replace')[-3000:]}")


def graphql(base: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["data"]


def stop(server: subprocess.Popen[bytes], first: signal.Signals = signal.SIGINT) -> None:
    """``first`` (SIGINT: what Ctrl-C sends; ``dagster dev`` ignores SIGTERM) to the
    server's process group (it and its code servers), then SIGKILL."""
    if server.poll() is None:
        os.killpg(server.pid, first)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
