"""Google credentials and one authorized HTTP session for the Google taps (Sheets, Drive).

Two ways to authenticate, chosen by which settings are present (exactly one):

* a service account: ``service_account_key`` (the key JSON as a secret) or
  ``service_account_key_file`` (its path); the token endpoint is the key's ``token_uri``;
* OAuth for a user: ``client_id`` + ``client_secret`` + ``refresh_token``; the token
  endpoint is ``token_uri`` (default Google's).

Tokens come from ``google-auth`` (no hand-written JWT code), imported lazily so that
dativo-core does not depend on it. Requests go through
``google.auth.transport.requests.AuthorizedSession``, which refreshes the access token
once when the API answers 401, inside the tap's :class:`~dativo.resilience.ResiliencePolicy`
for 429, 5xx and Google's rate-limit reasons. A refused refresh (revoked refresh token,
wrong key) is a :class:`~dativo.resilience.FatalApiError`: one line, exit 2, no secret.

``service_account_key``, ``client_secret`` and ``refresh_token`` may be secret references
(:mod:`dativo.secrets`): resolved when the credentials are made, and once more when the
token endpoint refuses them (a rotated secret is then used without a restart).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk import typing as th

from dativo.errors import ConfigError
from dativo.resilience import FatalApiError, ResiliencePolicy, TransientFailure, parse_retry_after
from dativo.secrets import has_references, resolve_settings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

__all__ = [
    "DEFAULT_TOKEN_URI",
    "GoogleSession",
    "auth_properties",
    "classify_response",
    "credentials_from_config",
]

DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
OAUTH_KEYS = ("client_id", "client_secret", "refresh_token")
SECRET_KEYS = ("service_account_key", "client_secret", "refresh_token")
"""The settings that may be secret references."""
# Google's reasons (errors[].reason) and statuses that mean "slow down", sent with 403 or 429.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded",
                                "RATE_LIMIT_EXCEEDED", "quotaExceeded"})
RATE_LIMIT_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED"})
_CHECK = ("check service_account_key / service_account_key_file, or client_id, "
          "client_secret and refresh_token (re-authorize if the token was revoked)")


def auth_properties() -> list[th.Property]:
    """The auth settings every Google tap declares (secrets flagged, never logged)."""
    return [
        th.Property("service_account_key", th.StringType, secret=True,
                    description="Service-account key: the JSON text of the key file."),
        th.Property("service_account_key_file", th.StringType,
                    description="Path of a service-account key JSON file."),
        th.Property("client_id", th.StringType,
                    description="OAuth client id (with client_secret and refresh_token)."),
        th.Property("client_secret", th.StringType, secret=True,
                    description="OAuth client secret."),
        th.Property("refresh_token", th.StringType, secret=True,
                    description="OAuth refresh token of the user whose files are read."),
        th.Property("token_uri", th.StringType, default=DEFAULT_TOKEN_URI,
                    description="OAuth token endpoint (a service account uses its key's "
                                "token_uri)."),
    ]


def _key_info(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The service-account key JSON from the settings, or None if OAuth is configured."""
    text, path = config.get("service_account_key"), config.get("service_account_key_file")
    oauth = [key for key in OAUTH_KEYS if config.get(key)]
    if text and path:
        raise ConfigError("set service_account_key or service_account_key_file, not both")
    if (text or path) and oauth:
        raise ConfigError(f"set a service-account key or OAuth ({', '.join(OAUTH_KEYS)}), "
                          f"not both: {', '.join(oauth)} also set")
    if path:
        try:
            text = Path(str(path)).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"service_account_key_file={path}: cannot read it "
                              f"({exc.strerror}); give the path of the key JSON") from exc
    if not text:
        missing = [key for key in OAUTH_KEYS if not config.get(key)]
        if missing:
            raise ConfigError(
                "no Google credentials: set service_account_key (or service_account_key_file"
                f"), or {', '.join(OAUTH_KEYS)} (missing: {', '.join(missing)})")
        return None
    source = "service_account_key_file" if path else "service_account_key"
    try:
        info = json.loads(str(text))
    except ValueError:
        raise ConfigError(f"{source}: not JSON; give the service-account key file's "
                          "content as downloaded from the Google Cloud console") from None
    absent = [key for key in ("client_email", "private_key", "token_uri")
              if not isinstance(info, dict) or not info.get(key)]
    if absent:
        raise ConfigError(f"{source}: the key JSON has no {', '.join(absent)}; give a "
                          "service-account key (type service_account)")
    return info


def credentials_from_config(config: Mapping[str, Any], scopes: Sequence[str]) -> Credentials:
    """Service-account or OAuth user credentials, from the settings (see the module doc);
    secret references among them are resolved now."""
    return _credentials(resolve_settings(config, SECRET_KEYS), scopes)


def _credentials(config: Mapping[str, Any], scopes: Sequence[str]) -> Credentials:
    """:func:`credentials_from_config` of settings whose references are resolved."""
    info = _key_info(config)
    if info is not None:
        from google.oauth2 import service_account

        try:
            return service_account.Credentials.from_service_account_info(
                info, scopes=list(scopes))
        except ValueError as exc:
            raise ConfigError("service_account_key: the private_key cannot be loaded "
                              f"({type(exc).__name__}); give the key JSON unmodified") from None
    from google.oauth2.credentials import Credentials as UserCredentials

    return UserCredentials(
        token=None, refresh_token=config["refresh_token"], client_id=config["client_id"],
        client_secret=config["client_secret"],
        token_uri=config.get("token_uri") or DEFAULT_TOKEN_URI, scopes=list(scopes))


def _google_error(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def classify_response(response: requests.Response, *, json_body: bool = True) -> None:
    """Return if ``response`` is usable; raise TransientFailure or FatalApiError otherwise.

    429, 5xx and a 403 whose reason is a rate limit are transient; other 4xx are fatal with
    Google's message. ``json_body`` checks that a 200 body is whole JSON (a cut-short body
    is transient).
    """
    status = response.status_code
    method = response.request.method if response.request is not None else "GET"
    path = requests.utils.urlparse(
        (response.request.url if response.request is not None else None) or "").path
    error = _google_error(response) if status >= 400 else {}
    reasons = {str(e.get("reason")) for e in error.get("errors") or [] if isinstance(e, dict)}
    limited = bool(reasons & RATE_LIMIT_REASONS) or error.get("status") in RATE_LIMIT_STATUSES
    if status == 429 or status >= 500 or (status == 403 and limited):
        reason = "429" if status == 403 else str(status)
        raise TransientFailure(reason, f"{method} {path}",
                               retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if status >= 400:
        detail = f"{error.get('status', response.reason)}: {error.get('message', '')}".strip()
        hint = {
            401: f"Google rejected the access token after a refresh; {_CHECK}",
            403: f"the credentials may not read {path}: share the file or folder with the "
                 "service account's client_email, or enable the API in the project",
            404: f"Google has no {path}: check the ids in the settings and that the "
                 "credentials can see them",
        }.get(status, f"Google refused {method} {path}: check the settings")
        raise FatalApiError(f"{hint} (HTTP {status}, {detail})", status=status, path=path)
    if json_body:
        try:
            response.json()
        except ValueError as exc:
            raise TransientFailure("bad-body", f"{path}: the body is not JSON (cut short?)"
                                   ) from exc


class GoogleSession:
    """Authorized GETs against one Google API, under the tap's policy.

    Args:
        config: The tap's config (auth settings, see :func:`auth_properties`).
        scopes: OAuth scopes requested for the token.
        api_endpoint: Base URL of the API (``https://sheets.googleapis.com``, a test server).
        policy: The tap's resilience policy (one per run).
        credentials: Another session's credentials, to share its token (Sheets and
            Drive endpoints of one tap); default: new ones from ``config``.
    """

    def __init__(self, config: Mapping[str, Any], *, scopes: Sequence[str], api_endpoint: str,
                 policy: ResiliencePolicy, credentials: Credentials | None = None) -> None:
        self.api_endpoint = api_endpoint.rstrip("/")
        self.policy = policy
        self._config, self._scopes = config, scopes
        self._secrets = resolve_settings(config, SECRET_KEYS)
        self.credentials = credentials or _credentials(self._secrets, scopes)
        self.session = self._session()

    def _session(self) -> Any:
        from google.auth.transport.requests import AuthorizedSession

        # One refresh on a 401 (the token expired early or was revoked server-side);
        # a second 401 is the API's answer, classified as fatal.
        return AuthorizedSession(self.credentials, refresh_status_codes=(401,),
                                 max_refresh_attempts=1)

    def _secrets_rotated(self) -> bool:
        """After a refused refresh: resolve the secret references again and, when one
        changed (rotated since it was read), make new credentials from them."""
        if not has_references(self._config, SECRET_KEYS):
            return False
        fresh = resolve_settings(self._config, SECRET_KEYS)
        if all(fresh.get(k) == self._secrets.get(k) for k in SECRET_KEYS):
            return False
        self._secrets = fresh
        self.credentials = _credentials(fresh, self._scopes)
        self.session.close()
        self.session = self._session()
        return True

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None, *,
              stream: bool, json_body: bool) -> requests.Response:
        from google.auth import exceptions as google_exceptions

        path = requests.utils.urlparse(url).path
        timeout = self.policy.settings.request_timeout_seconds
        try:
            try:
                response = self.session.request(method, url, params=params, stream=stream,
                                                timeout=timeout)
            except google_exceptions.RefreshError as exc:
                if getattr(exc, "retryable", False) or not self._secrets_rotated():
                    raise
                response = self.session.request(method, url, params=params, stream=stream,
                                                timeout=timeout)
        except google_exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):  # the token endpoint answered 5xx/429
                raise TransientFailure("token", f"{path}: the token endpoint failed "
                                       f"({_refresh_reason(exc)})") from None
            raise FatalApiError(f"Google refused the credentials: {_refresh_reason(exc)}; "
                                f"{_CHECK}", path=path) from None
        except (requests.RequestException, google_exceptions.TransportError) as exc:
            raise TransientFailure("connection", f"{path}: {type(exc).__name__}") from exc
        classify_response(response, json_body=json_body and not stream)
        return response

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` (under api_endpoint) and its JSON body, retried per the policy."""
        url = path if path.startswith("http") else f"{self.api_endpoint}{path}"
        response = self.policy.call(
            lambda: self._send("GET", url, params, stream=False, json_body=True),
            what=f"GET {requests.utils.urlparse(url).path}")
        return response.json()

    def get_stream(self, path: str, params: Mapping[str, Any] | None = None
                   ) -> requests.Response:
        """GET ``path`` with a streamed body (downloads); the caller closes the response."""
        url = path if path.startswith("http") else f"{self.api_endpoint}{path}"
        return self.policy.call(
            lambda: self._send("GET", url, params, stream=True, json_body=False),
            what=f"GET {requests.utils.urlparse(url).path}")

    def close(self) -> None:
        self.session.close()


def _refresh_reason(exc: BaseException) -> str:
    """The token endpoint's error code and description (never the request's secrets)."""
    data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    code, description = data.get("error"), data.get("error_description")
    if isinstance(code, dict):  # Google's API error shape, from a proxy or a 5xx
        code, description = code.get("status") or code.get("code"), code.get("message")
    if code:
        return f"{code}" + (f" ({description})" if description else "")
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.splitlines()[0][:200] if text else type(exc).__name__
