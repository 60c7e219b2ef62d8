"""HubSpot HTTP outcomes classified at one boundary, and the GETs made outside streams.

Every response passes :func:`classify_response`: 429 and 5xx (and a body that is not
JSON, i.e. cut short) are :class:`TransientFailure` for the shared
:class:`~dativo.resilience.ResiliencePolicy`; 401, 403 and 4xx, and a 200 without the
``results`` list every endpoint read here pages, are :class:`FatalApiError` with what
to fix. Connection errors become transient failures in
:func:`send_once`. The token is only ever in the Authorization header, never in a URL or
a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from dativo.resilience import (
    FatalApiError,
    ResiliencePolicy,
    TransientFailure,
    parse_retry_after,
)
from dativo.secrets import FreshSecret

DEFAULT_API_BASE = "https://api.hubapi.com"


def classify_response(response: requests.Response) -> None:
    """Return if ``response`` is a usable JSON answer; raise otherwise."""
    status = response.status_code
    path = requests.utils.urlparse(response.request.url or "").path
    if status == 429 or status >= 500:
        raise TransientFailure(str(status), f"{response.request.method} {path}",
                               retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if status >= 400:
        raise _fatal(response, path)
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientFailure("bad-body", f"{path}: the body is not JSON (cut short?)"
                               ) from exc
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        # Every endpoint the tap reads pages a 'results' list; without it a page would
        # read as "no records" and the bookmark would move past data never seen.
        raise FatalApiError(
            f"HubSpot answered {response.request.method} {path} with HTTP {status} but no "
            "'results' list; check that api_base is HubSpot's API "
            f"({DEFAULT_API_BASE}) and not a proxy or another service",
            status=status, path=path)


def _fatal(response: requests.Response, path: str) -> FatalApiError:
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    status = response.status_code
    detail = f"{body.get('category', 'ERROR')}: {body.get('message', response.reason)}"
    hint = {
        401: "HubSpot rejected the access_token: create a private app (Settings > "
             "Integrations > Private apps) and set its token as access_token "
             "(TAP_DATIVO_HUBSPOT_ACCESS_TOKEN)",
        403: f"the private app may not read {path}: add the crm.objects.<object>.read "
             "scope (crm.objects.owners.read for owners) to the app, or deselect the stream",
    }.get(status, f"HubSpot refused {response.request.method} {path}: check the stream "
                  "selection and object names")
    correlation = body.get("correlationId")
    return FatalApiError(f"{hint} (HTTP {status}, correlation id {correlation}: {detail})",
                         status=status, path=path, request_id=correlation)


def send_once(session: requests.Session, request: requests.PreparedRequest,
              timeout: float) -> requests.Response:
    """One attempt: send, translate connection errors, classify the response."""
    try:
        response = session.send(request, timeout=timeout)
    except requests.RequestException as exc:
        path = requests.utils.urlparse(request.url or "").path
        raise TransientFailure("connection", f"{path}: {type(exc).__name__}") from exc
    classify_response(response)
    return response


class HubSpotClient:
    """GETs outside the streams (property discovery), under the tap's policy."""

    def __init__(self, access_token: str | FreshSecret, *, api_base: str,
                 policy: ResiliencePolicy) -> None:
        self.api_base = api_base.rstrip("/")
        self.policy = policy
        self.token = (access_token if isinstance(access_token, FreshSecret)
                      else FreshSecret(access_token, setting="access_token"))
        self.session = requests.Session()

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        timeout = self.policy.settings.request_timeout_seconds
        response = self.policy.call(lambda: send_refreshing(
            self.session, self._request(path, params), timeout, self.token),
            what=f"GET {path}")
        return response.json()

    def _request(self, path: str, params: dict[str, Any] | None) -> requests.PreparedRequest:
        request = self.session.prepare_request(
            requests.Request("GET", f"{self.api_base}{path}", params=params))
        request.headers["Authorization"] = f"Bearer {self.token.value}"
        return request


def send_refreshing(session: requests.Session, request: requests.PreparedRequest,
                    timeout: float, token: FreshSecret) -> requests.Response:
    """:func:`send_once`; on a 401, when the token (a secret reference) has changed since
    it was read, once more with the new token."""
    return refreshing(lambda: send_once(session, request, timeout), request, token)


def refreshing(send: Callable[[], requests.Response], request: requests.PreparedRequest,
               token: FreshSecret) -> requests.Response:
    """``send()``; after a 401, when ``token`` changed since it was read, the request
    gets the new token and is sent once more."""
    try:
        return send()
    except FatalApiError as exc:
        if exc.status != 401 or not token.refreshed():
            raise
    request.headers["Authorization"] = f"Bearer {token.value}"
    return send()
