"""OAuth 2.0 access tokens from Salesforce's token endpoint: refresh token or JWT bearer.

Two flows of a connected app, chosen by the settings given:

* refresh token (``client_id``, ``client_secret``, ``refresh_token``): the web-server
  flow's long-lived token, exchanged at ``<login_url>/services/oauth2/token``;
* JWT bearer (``client_id``, ``username``, ``private_key``): an RS256 assertion signed
  with the key whose certificate is uploaded to the connected app, for unattended
  runs without a stored token (signed with ``cryptography``, no JWT library needed).

Secrets are :class:`~dativo.secrets.FreshSecret`: a reference (``env:``, ``file:``,
``vault:``) is resolved when the token is asked for and again when Salesforce refuses
the grant, so a rotated secret costs one retry, not a failed run.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dativo.errors import ConfigError
from dativo.resilience import FatalApiError, ResiliencePolicy, TransientFailure
from dativo.secrets import FreshSecret

TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_SECONDS = 180  # Salesforce accepts assertions valid for at most 3 minutes


@dataclass(frozen=True)
class Token:
    """An access token and the org's instance URL it is valid on."""

    access_token: str
    instance_url: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_assertion(client_id: str, username: str, audience: str, private_key_pem: str,
                  *, now: float | None = None) -> str:
    """An RS256 JWT for Salesforce's JWT bearer flow (iss, sub, aud, exp).

    Raises:
        ConfigError: ``private_key`` is not a PEM RSA private key.
    """
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigError("private_key: not an unencrypted PEM private key; give the "
                          "key (-----BEGIN PRIVATE KEY-----...) whose certificate is "
                          "uploaded to the connected app") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("private_key: Salesforce's JWT bearer flow signs with RS256, "
                          "which needs an RSA key")
    issued = int(time.time() if now is None else now)
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = _b64url(json.dumps({"iss": client_id, "sub": username, "aud": audience,
                                 "exp": issued + JWT_LIFETIME_SECONDS}).encode())
    signing_input = f"{header}.{claims}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{claims}.{_b64url(signature)}"


def jwt_audience(login_url: str) -> str:
    """The ``aud`` Salesforce expects: the generic login host, also when ``login_url``
    is a My Domain (``*.my.salesforce.com``, a sandbox's ``*.sandbox.my...``); any
    other URL (a test server, an Experience Cloud site) is its own audience."""
    host = urlsplit(login_url).hostname or ""
    if host.endswith(".sandbox.my.salesforce.com"):
        return "https://test.salesforce.com"
    if host.endswith(".my.salesforce.com"):
        return "https://login.salesforce.com"
    return login_url


class SalesforceAuth:
    """Gets access tokens for one connected app; :meth:`token` asks the endpoint anew.

    Raises (from :meth:`token`):
        ConfigError: neither flow's settings are complete, or both are given.
        FatalApiError: Salesforce refused the grant (``invalid_grant``,
            ``invalid_client``): the user must fix the app or its credentials.
    """

    def __init__(self, config: dict[str, Any], *, policy: ResiliencePolicy,
                 session: requests.Session) -> None:
        self.login_url = str(config.get("login_url") or "https://login.salesforce.com"
                             ).rstrip("/")
        self.client_id = str(config.get("client_id") or "")
        self.policy = policy
        self.session = session
        has_refresh = bool(config.get("refresh_token"))
        has_jwt = bool(config.get("private_key") or config.get("username"))
        if has_refresh and has_jwt:
            raise ConfigError("refresh_token and username/private_key are both set: give "
                              "one flow, refresh_token (with client_secret) or the JWT "
                              "bearer flow (username and private_key)")
        if not self.client_id:
            raise ConfigError("client_id is not set: give the connected app's consumer "
                              "key")
        if has_refresh:
            if not config.get("client_secret"):
                raise ConfigError("client_secret is not set: the refresh token flow "
                                  "needs the connected app's consumer secret")
            self.flow = "refresh_token"
            self.secrets = {name: FreshSecret(str(config[name]), setting=name)
                            for name in ("client_secret", "refresh_token")}
        elif config.get("private_key") and config.get("username"):
            self.flow = "jwt"
            self.username = str(config["username"])
            self.secrets = {"private_key": FreshSecret(str(config["private_key"]),
                                                       setting="private_key")}
        else:
            raise ConfigError("no credentials: set refresh_token and client_secret (OAuth "
                              "refresh token flow), or username and private_key (JWT "
                              "bearer flow)")

    def token(self) -> Token:
        """A new access token (retried under the policy when the endpoint fails)."""
        try:
            return self.policy.call(self._request, what=f"POST {TOKEN_PATH}")
        except FatalApiError as exc:
            if exc.status not in (400, 401) or not any(
                    [s.refreshed() for s in self.secrets.values()]):
                raise
            return self.policy.call(self._request, what=f"POST {TOKEN_PATH}")

    def _form(self) -> dict[str, str]:
        if self.flow == "refresh_token":
            return {"grant_type": "refresh_token", "client_id": self.client_id,
                    "client_secret": self.secrets["client_secret"].value,
                    "refresh_token": self.secrets["refresh_token"].value}
        return {"grant_type": JWT_GRANT, "assertion": jwt_assertion(
            self.client_id, self.username, jwt_audience(self.login_url),
            self.secrets["private_key"].value)}

    def _request(self) -> Token:
        timeout = self.policy.settings.request_timeout_seconds
        try:
            response = self.session.post(f"{self.login_url}{TOKEN_PATH}", data=self._form(),
                                         timeout=timeout)
        except requests.RequestException as exc:
            raise TransientFailure("connection", f"{TOKEN_PATH}: {type(exc).__name__}"
                                   ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientFailure(str(response.status_code), f"POST {TOKEN_PATH}")
        try:
            body = response.json()
        except ValueError:
            raise TransientFailure("bad-body", f"{TOKEN_PATH}: the body is not JSON"
                                   ) from None
        if response.status_code != 200 or not body.get("access_token"):
            error = body.get("error", "error")
            flow = ("check client_id, client_secret and refresh_token (re-authorize the "
                    "app if the token was revoked)" if self.flow == "refresh_token" else
                    "check client_id, username and private_key, that the certificate is "
                    "uploaded to the connected app and the user is pre-authorized")
            raise FatalApiError(
                f"Salesforce refused the {self.flow} grant at {self.login_url}: {error}: "
                f"{body.get('error_description', response.reason)}; {flow}",
                status=response.status_code, path=TOKEN_PATH)
        return Token(str(body["access_token"]), str(body.get("instance_url") or ""))
