"""Salesforce REST requests under the shared resilience policy, classified at one boundary.

Every request goes through :meth:`SalesforceClient.send`, one attempt of which is
classified here: 429, 5xx, a connection error or a cut-short body, and 403
``REQUEST_LIMIT_EXCEEDED`` (too many concurrent requests, or the daily allowance
used up) are :class:`TransientFailure` for :class:`~dativo.resilience.ResiliencePolicy`
(backoff, Retry-After, circuit breaker); 401 ``INVALID_SESSION_ID`` (the access token
expired or was revoked) gets a new token and the request once more; any other 4xx is a
:class:`FatalApiError` naming Salesforce's ``errorCode`` and message.

Every answer's ``Sforce-Limit-Info`` (``api-usage=<used>/<limit>``) is kept and
exported as the ``dativo_api_daily_requests_used``/``_limit`` gauges; :attr:`exhausted`
tells the streams to stop cleanly when ``max_api_usage_share`` of the allowance is
used. The access token is only ever in the Authorization header, and is redacted from
the logs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import requests

from dativo import metrics
from dativo.errors import ConfigError
from dativo.logs import register_secrets
from dativo.resilience import (
    FatalApiError,
    ResiliencePolicy,
    TransientFailure,
    parse_retry_after,
)
from tap_dativo_salesforce.auth import SalesforceAuth, Token

LOGGER = logging.getLogger(__name__)
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_VERSION = re.compile(r"\d+\.\d")


class SalesforceClient:
    """One org's REST API for the run: token, instance URL, usage counters."""

    def __init__(self, config: Mapping[str, Any], *, policy: ResiliencePolicy,
                 metric_labels: Mapping[str, str]) -> None:
        version = str(config.get("api_version") or "")
        if not _VERSION.fullmatch(version):
            raise ConfigError(f"api_version: {version!r} is not a Salesforce API version "
                              "such as 62.0")
        share = float(config.get("max_api_usage_share", 0.9))
        if not 0 < share <= 1:
            raise ConfigError(f"max_api_usage_share: {share} must be above 0 and at most "
                              "1 (a share of the daily API request allowance)")
        self.max_share = share
        self.version = version
        self.policy = policy
        self.session = requests.Session()
        self.auth = SalesforceAuth(dict(config), policy=policy, session=self.session)
        self._instance_url = str(config.get("instance_url") or "").rstrip("/")
        self._token: Token | None = None
        self._labels = dict(metric_labels)
        self.usage: tuple[int, int] | None = None  # (used, limit), last reported

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.version}"

    @property
    def instance_url(self) -> str:
        return self._instance_url or self._current_token().instance_url.rstrip("/")

    def _current_token(self) -> Token:
        if self._token is None:
            self._token = self.auth.token()
            register_secrets([self._token.access_token])
        return self._token

    @property
    def exhausted(self) -> bool:
        """The last answer reported at least ``max_api_usage_share`` of the daily
        allowance used: stop before the org's other integrations are starved."""
        return self.usage is not None and self.usage[1] > 0 and (
            self.usage[0] >= self.max_share * self.usage[1])

    def usage_text(self) -> str:
        if self.usage is None:
            return "no usage reported"
        used, limit = self.usage
        return f"{used} of {limit} daily API requests used ({used / max(limit, 1):.0%})"

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a JSON resource (numbers as :class:`Decimal`, nothing rounds them)."""
        return json.loads(self.send("GET", path, params=params).content,
                          parse_float=Decimal)

    def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        return json.loads(self.send("POST", path, json_body=body).content,
                          parse_float=Decimal)

    def send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
             json_body: Mapping[str, Any] | None = None,
             accept: str = "application/json") -> requests.Response:
        """One request under the policy; ``path`` starts with ``/services/``."""
        what = f"{method} {path}"
        return self.policy.call(
            lambda: self._attempt(method, path, params, json_body, accept), what=what)

    def _attempt(self, method: str, path: str, params: Mapping[str, Any] | None,
                 json_body: Mapping[str, Any] | None, accept: str) -> requests.Response:
        response = self._once(method, path, params, json_body, accept)
        if response.status_code == 401 and _error_code(response) == "INVALID_SESSION_ID":
            LOGGER.info("Salesforce answered INVALID_SESSION_ID: getting a new access "
                        "token and sending %s %s once more", method, path)
            self._token = None  # expired or revoked: one new token, one more try
            response = self._once(method, path, params, json_body, accept)
        self._classify(response, method, path)
        return response

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None,
              json_body: Mapping[str, Any] | None, accept: str) -> requests.Response:
        token = self._current_token()
        try:
            response = self.session.request(
                method, f"{self.instance_url}{path}", params=params, json=json_body,
                headers={"Authorization": f"Bearer {token.access_token}", "Accept": accept},
                timeout=self.policy.settings.request_timeout_seconds)
        except requests.RequestException as exc:
            raise TransientFailure("connection", f"{path}: {type(exc).__name__}") from exc
        self._observe_usage(response)
        return response

    def _observe_usage(self, response: requests.Response) -> None:
        match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match is None:
            return
        self.usage = (int(match[1]), int(match[2]))
        metrics.API_DAILY_USED.labels(**self._labels).set(self.usage[0])
        metrics.API_DAILY_LIMIT.labels(**self._labels).set(self.usage[1])

    def _classify(self, response: requests.Response, method: str, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        code = _error_code(response)
        if status == 429 or status >= 500 or code == "REQUEST_LIMIT_EXCEEDED":
            raise TransientFailure(code or str(status), f"{method} {path}: "
                                   f"{_error_message(response)}",
                                   retry_after=parse_retry_after(
                                       response.headers.get("Retry-After")))
        hint = {
            401: "Salesforce refused the new access token too: check that the connected "
                 "app's user may use the API (API Enabled permission)",
            403: "the user may not read this: grant the object and field permissions, "
                 "or leave the object out of 'objects'",
            404: "check api_version and instance_url, and the 'objects' setting",
        }.get(status, "the Bulk API refuses some objects and queries: read this object "
                      "through REST (read_method {\"<object>\": \"rest\"})"
              if path.endswith("/jobs/query") else
              "check the 'objects' setting and api_version")
        raise FatalApiError(f"Salesforce refused {method} {path}: {code or status}: "
                            f"{_error_message(response)}; {hint}", status=status, path=path)


def _errors(response: requests.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        body = [body]
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


def _error_code(response: requests.Response) -> str | None:
    errors = _errors(response)
    return str(errors[0].get("errorCode")) if errors and errors[0].get("errorCode") else None


def _error_message(response: requests.Response) -> str:
    errors = _errors(response)
    text = str(errors[0].get("message", "")) if errors else ""
    return " ".join(text.split()) or f"HTTP {response.status_code} {response.reason}"
