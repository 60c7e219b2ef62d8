"""A threaded stdlib HTTP server on a free loopback port, with faults injected on demand.

The Stripe and HubSpot fixture APIs subclass :class:`FixtureApi`: they implement
``route(request) -> (status, headers, body)`` over their in-memory data, and this module
does the socket work, the request log and the faults. Tests queue faults with
:meth:`FixtureApi.inject`; each fault applies to the next matching request(s), so a test
knows exactly how many failures the client saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

FaultKind = Literal["status", "slow", "truncated", "reset"]
Response = tuple[int, dict[str, str], bytes]


@dataclass
class Fault:
    """What to do to the next ``times`` requests whose path starts with ``path``.

    ``status``: answer ``status`` with ``body`` (and ``Retry-After`` if set);
    ``slow``: wait ``delay`` seconds, then answer normally;
    ``truncated``: send the normal headers but only half the body, then close;
    ``reset``: close the connection without an answer.
    """

    kind: FaultKind
    times: int = 1
    path: str = "/"
    status: int = 500
    body: dict[str, Any] | None = None
    retry_after: float | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; ``query`` keeps repeated keys as lists."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    fault: str | None
    raw: bytes = b""  # the body as sent (a form-encoded token request is not JSON)

    def one(self, key: str, default: str | None = None) -> str | None:
        values = self.query.get(key)
        return values[-1] if values else default


@dataclass
class FixtureApi:
    """Base of the fixture APIs: start/stop, request log, fault queue."""

    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def served(self, path_prefix: str = "/", *, faulted: bool | None = None) -> list[Request]:
        """Requests under ``path_prefix``; ``faulted`` filters on whether a fault hit them."""
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)
                    and (faulted is None or (r.fault is not None) == faulted)]

    def route(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def error_body(self, status: int) -> dict[str, Any]:
        return {"error": {"message": f"fixture fault {status}"}}

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path) and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def start(self) -> FixtureApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, a keep-alive client's
            # delayed ACK adds 40 ms to every response.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request log is api.requests

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                query: dict[str, list[str]] = {}
                for key, value in parse_qsl(parts.query, keep_blank_values=True):
                    query.setdefault(key, []).append(value)
                body = json.loads(raw) if raw.strip().startswith(b"{") else None
                fault = api._take_fault(parts.path)
                request = Request(self.command, parts.path, query,
                                  {k.lower(): v for k, v in self.headers.items()}, body,
                                  fault.kind if fault else None, raw)
                with api.lock:
                    api.requests.append(request)
                if fault is not None and fault.kind == "reset":
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "status":
                    headers = {"Content-Type": "application/json"}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                    payload = fault.body or api.error_body(fault.status)
                    self._send(fault.status, headers, json.dumps(payload).encode())
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.delay)
                status, headers, data = api.route(request)
                if fault is not None and fault.kind == "truncated":
                    self._send(status, headers, data, cut=len(data) // 2)
                    return
                self._send(status, headers, data)

            def _send(self, status: int, headers: dict[str, str], data: bytes,
                      cut: int | None = None) -> None:
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data if cut is None else data[:cut])
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (slow fault)
                    return
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def json_response(status: int, payload: Any, **headers: str) -> Response:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


def running(api: FixtureApi) -> Iterator[FixtureApi]:
    """Generator for pytest fixtures: start, yield, stop."""
    api.start()
    try:
        yield api
    finally:
        api.stop()
