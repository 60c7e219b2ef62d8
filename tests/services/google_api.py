"""Google's token endpoint and the Drive ``files`` routes, the base of the Google fixtures.

:class:`GoogleApi` is a :class:`~tests.services.http_fixture.FixtureApi` that speaks what
every Google tap needs before its own API:

* ``POST /token``: the OAuth 2 token endpoint, for ``grant_type=refresh_token`` (checks
  client id, secret and refresh token; a revoked token answers ``invalid_grant``) and the
  service-account ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (verifies the JWT
  assertion's RS256 signature with the service account's public key, its audience and
  expiry, through ``google.auth.jwt``);
* Bearer checks on every other route: an unknown, expired or revoked access token answers
  401 in Google's error shape (:meth:`expire_tokens` makes the client see that mid-run);
* ``GET /drive/v3/files`` (``q`` with ``'<id>' in parents``, ``mimeType = '...'``,
  ``trashed = false``, ``name = '...'``, joined by ``and``; ``pageSize``/``pageToken``) and
  ``GET /drive/v3/files/<id>`` (``fields``), over :attr:`files`.

Subclasses (Sheets, Drive) implement :meth:`api_route` and may extend :meth:`drive_route`.
Errors are Google's JSON: ``{"error": {"code", "message", "status", "errors": [{"reason"}]}}``.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.services.http_fixture import FixtureApi, Request, Response, json_response

CLIENT_ID = "fixture-client.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-fixture-client-secret"
REFRESH_TOKEN = "1//fixture-refresh-token"
SERVICE_EMAIL = "ingest@dativo-fixture.iam.gserviceaccount.com"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
FOLDER_MIME = "application/vnd.google-apps.folder"


def google_error(status: int, message: str, reason: str | None = None) -> dict[str, Any]:
    """Google's error JSON (``errors[].reason`` is what clients match rate limits on)."""
    reason = reason or {429: "rateLimitExceeded", 401: "authError", 404: "notFound",
                        403: "forbidden"}.get(status, "backendError")
    return {"error": {"code": status, "message": message,
                      "status": STATUS_NAMES.get(status, "UNKNOWN"),
                      "errors": [{"message": message, "domain": "global", "reason": reason}]}}


def rfc3339(epoch: float) -> str:
    """Drive's time format: ``2026-01-02T03:04:05.678Z``."""
    when = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class GoogleApi(FixtureApi):
    """Token endpoint + Drive files over in-memory state; see the module doc.

    ``token_lifetime`` is the ``expires_in`` of issued tokens (seconds). ``clock`` is the
    Drive modifiedTime of the next change (epoch seconds, +1 per change).
    """

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    refresh_token: str = REFRESH_TOKEN
    token_lifetime: int = 3600
    clock: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    revoked: set[str] = field(default_factory=set)
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expiry (epoch)
    token_grants: list[str] = field(default_factory=list)  # grant_type per issued token
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: rsa.RSAPrivateKey = field(default_factory=_private_key)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- credentials the taps are configured with ------------------------------------

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def oauth_config(self) -> dict[str, str]:
        """The OAuth settings of a tap that uses this server."""
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "refresh_token": self.refresh_token, "token_uri": self.token_uri}

    def service_account_info(self) -> dict[str, str]:
        """A service-account key JSON whose token_uri is this server (call after start)."""
        pem = self.key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "dativo-fixture",
                "private_key_id": "fixture-key-1", "private_key": pem,
                "client_email": SERVICE_EMAIL, "client_id": "1000000000001",
                "token_uri": self.token_uri,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth"}

    def public_key_pem(self) -> str:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def expire_tokens(self) -> None:
        """Every issued access token is now expired: the next API call answers 401."""
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def revoke(self, refresh_token: str | None = None) -> None:
        """Revoke a refresh token (default the fixture's) and the access tokens issued."""
        with self.lock:
            self.revoked.add(refresh_token or self.refresh_token)
            self.tokens.clear()

    # -- Drive files ------------------------------------------------------------------

    def tick(self) -> str:
        with self.lock:
            self.clock += 1
            return rfc3339(self.clock)

    def add_file(self, name: str, mime_type: str, *, parents: list[str] | None = None,
                 file_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """A Drive file's metadata (``id``, ``name``, ``mimeType``, ``parents``, times)."""
        with self.lock:
            file_id = file_id or f"file{next(self._ids):04d}"
            now = self.tick()
            meta = {"kind": "drive#file", "id": file_id, "name": name, "mimeType": mime_type,
                    "parents": list(parents or []), "trashed": False,
                    "createdTime": now, "modifiedTime": now, "version": "1", **extra}
            self.files[file_id] = meta
            return meta

    def touch(self, file_id: str, **changes: Any) -> dict[str, Any]:
        """Modify a file: a new modifiedTime and version (plus ``changes``)."""
        with self.lock:
            meta = self.files[file_id]
            meta.update(changes)
            meta["modifiedTime"] = self.tick()
            meta["version"] = str(int(meta.get("version", "1")) + 1)
            return meta

    # -- routing ------------------------------------------------------------------------

    def error_body(self, status: int) -> dict[str, Any]:
        message = {429: "Quota exceeded for quota metric 'Read requests' and limit 'Read "
                        "requests per minute per user'.",
                   401: "Request had invalid authentication credentials."}.get(
                       status, "Internal error encountered.")
        return google_error(status, message)

    def route(self, request: Request) -> Response:
        if request.path == "/token" and request.method == "POST":
            return self.token(request)
        auth = request.headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        with self.lock:
            expiry = self.tokens.get(token)
        if expiry is None or expiry <= time.time():
            return json_response(401, google_error(
                401, "Request had invalid authentication credentials. Expected OAuth 2 "
                     "access token, login cookie or other valid authentication credential."))
        if request.path.startswith("/drive/v3/"):
            return self.drive_route(request)
        return self.api_route(request)

    def api_route(self, request: Request) -> Response:
        """The subclass's API; the base answers 404."""
        return self.not_found(request.path)

    @staticmethod
    def not_found(what: str) -> Response:
        return json_response(404, google_error(404, f"Requested entity was not found: {what}"))

    # -- token endpoint -------------------------------------------------------------------

    def token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.raw.decode(), keep_blank_values=True))
        grant = form.get("grant_type")
        if grant == "refresh_token":
            if form.get("client_id") != self.client_id or \
                    form.get("client_secret") != self.client_secret:
                return self._token_error(401, "invalid_client", "The OAuth client was not found.")
            with self.lock:
                revoked = form.get("refresh_token") in self.revoked
            if form.get("refresh_token") != self.refresh_token or revoked:
                return self._token_error(400, "invalid_grant",
                                         "Token has been expired or revoked.")
        elif grant == JWT_BEARER:
            problem = self._bad_assertion(form.get("assertion", ""))
            if problem:
                return self._token_error(400, "invalid_grant", problem)
        else:
            return self._token_error(400, "unsupported_grant_type",
                                     f"Invalid grant_type: {grant}")
        with self.lock:
            access = f"ya29.fixture-{next(self._ids)}"
            self.tokens[access] = time.time() + self.token_lifetime
            self.token_grants.append(str(grant))
        return json_response(200, {"access_token": access, "expires_in": self.token_lifetime,
                                   "token_type": "Bearer", "scope": form.get("scope", "")})

    def _bad_assertion(self, assertion: str) -> str | None:
        """Why a service account's JWT is refused, or None: signature, iss, aud, exp."""
        from google.auth import jwt

        try:
            # google-auth signs for Google's token endpoint whatever the key's token_uri.
            claims = jwt.decode(assertion, certs=self.public_key_pem(),
                                audience=[self.token_uri, GOOGLE_TOKEN_URI])
        except ValueError as exc:
            return f"Invalid JWT Signature. ({str(exc).splitlines()[0][:120]})"
        if claims.get("iss") != SERVICE_EMAIL:
            return f"Invalid JWT: iss {claims.get('iss')!r} is not the service account"
        return None

    @staticmethod
    def _token_error(status: int, code: str, description: str) -> Response:
        return json_response(status, {"error": code, "error_description": description})

    # -- Drive v3 files -------------------------------------------------------------------

    def drive_route(self, request: Request) -> Response:
        """``files.list`` and ``files.get``; the Drive fixture adds export and changes."""
        if request.path == "/drive/v3/files":
            return self.files_list(request)
        if match := re.fullmatch(r"/drive/v3/files/([^/]+)", request.path):
            with self.lock:
                meta = self.files.get(match[1])
            if meta is None:
                return self.not_found(f"File not found: {match[1]}.")
            return json_response(200, self.select_fields(meta, request.one("fields")))
        return self.not_found(request.path)

    @staticmethod
    def select_fields(meta: dict[str, Any], fields: str | None) -> dict[str, Any]:
        """A files.get ``fields`` mask (flat names only; ``*`` or none: everything)."""
        if not fields or fields.strip() == "*":
            return dict(meta)
        names = [name.strip() for name in fields.split(",")]
        return {name: meta[name] for name in names if name in meta}

    def files_list(self, request: Request) -> Response:
        try:
            matches = self.query_filter(request.one("q") or "")
        except ValueError as exc:
            return json_response(400, google_error(400, f"Invalid Value: {exc}", "invalid"))
        with self.lock:
            found = sorted((dict(m) for m in self.files.values() if matches(m)),
                           key=lambda m: (m["name"], m["id"]))
        size = min(1000, int(request.one("pageSize") or 100))
        start = int(request.one("pageToken") or 0)
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False,
                                "files": found[start:start + size]}
        if start + size < len(found):
            body["nextPageToken"] = str(start + size)
        return json_response(200, body)

    @staticmethod
    def query_filter(q: str) -> Any:
        """A predicate for Drive's ``q`` (the clauses the taps send, joined by ``and``)."""
        checks: list[Any] = []
        for clause in filter(None, (c.strip() for c in re.split(r"\s+and\s+", q))):
            if m := re.fullmatch(r"'([^']+)'\s+in\s+parents", clause):
                checks.append(lambda f, v=m[1]: v in f.get("parents", []))
            elif m := re.fullmatch(r"(mimeType|name)\s*(=|!=)\s*'([^']*)'", clause):
                checks.append(lambda f, k=m[1], op=m[2], v=m[3]:
                              (f.get(k) == v) == (op == "="))
            elif m := re.fullmatch(r"trashed\s*=\s*(true|false)", clause):
                checks.append(lambda f, v=m[1] == "true": bool(f.get("trashed")) == v)
            else:
                raise ValueError(f"q clause {clause!r}")
        return lambda f: all(check(f) for check in checks)


def dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode()
