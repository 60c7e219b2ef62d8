"""dativo.google_auth against the Google fixture server: which settings make which
credentials, and what each HTTP outcome becomes under the resilience policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dativo import exit_codes
from dativo.errors import ConfigError
from dativo.google_auth import GoogleSession, credentials_from_config
from dativo.resilience import FatalApiError, ResiliencePolicy, RetriesExhaustedError
from dativo.resilience_settings import ResilienceSettings
from tests.services.google_api import GoogleApi, google_error
from tests.services.http_fixture import Fault, Request, Response, json_response

SCOPES = ["https://www.googleapis.com/auth/drive.metadata.readonly"]


@pytest.fixture
def api() -> Iterator[GoogleApi]:
    server = GoogleApi().start()
    server.add_file("Report", "text/plain", file_id="f1")
    yield server
    server.stop()


def session(api: GoogleApi, config: dict[str, Any] | None = None, **settings: Any
            ) -> GoogleSession:
    policy = ResiliencePolicy(ResilienceSettings(
        backoff_base_seconds=0.0, backoff_max_seconds=0.0, requests_per_second=0,
        **settings))
    return GoogleSession(config or api.oauth_config(), scopes=SCOPES, api_endpoint=api.url,
                         policy=policy)


@pytest.mark.parametrize(("config", "message"), [
    ({}, "no Google credentials: set service_account_key (or service_account_key_file), or "
         "client_id, client_secret, refresh_token (missing: client_id, client_secret, "
         "refresh_token)"),
    ({"client_id": "c", "refresh_token": "r"}, "(missing: client_secret)"),
    ({"service_account_key": "{}", "service_account_key_file": "k.json"},
     "set service_account_key or service_account_key_file, not both"),
    ({"service_account_key": "{}", "client_id": "c"},
     "set a service-account key or OAuth (client_id, client_secret, refresh_token), not "
     "both: client_id also set"),
    ({"service_account_key": "not json"}, "service_account_key: not JSON"),
    ({"service_account_key": '{"type": "service_account", "client_email": "a@b"}'},
     "service_account_key: the key JSON has no private_key, token_uri"),
    ({"service_account_key_file": "/nonexistent/key.json"},
     "service_account_key_file=/nonexistent/key.json: cannot read it (No such file or "
     "directory)"),
])
def test_settings_that_make_no_credentials_are_one_error_naming_the_key(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        credentials_from_config(config, SCOPES)
    assert message in str(caught.value)


def test_a_mangled_private_key_is_a_config_error_without_the_key(
    api: GoogleApi, tmp_path: Path
) -> None:
    info = api.service_account_info()
    info["private_key"] = info["private_key"][:200] + "garbage-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError) as caught:
        credentials_from_config({"service_account_key": json.dumps(info)}, SCOPES)
    assert "the private_key cannot be loaded" in str(caught.value)
    assert info["private_key"][40:80] not in str(caught.value)


def test_oauth_and_service_account_get_tokens_from_the_configured_endpoint(
    api: GoogleApi, tmp_path: Path
) -> None:
    assert session(api).get_json("/drive/v3/files/f1", {"fields": "name"}) == {
        "name": "Report"}
    key = tmp_path / "key.json"
    key.write_text(json.dumps(api.service_account_info()))
    sa = session(api, {"service_account_key_file": str(key)})
    assert sa.get_json("/drive/v3/files/f1", {"fields": "mimeType"}) == {
        "mimeType": "text/plain"}
    assert api.token_grants == ["refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"]
    token_requests = api.served("/token")
    assert all(r.headers["content-type"] == "application/x-www-form-urlencoded"
               for r in token_requests)


def test_rate_limits_and_5xx_are_retried_until_they_pass(api: GoogleApi) -> None:
    client = session(api)
    api.inject(Fault("status", times=2, path="/drive/v3/files/f1", status=429))
    api.inject(Fault("status", times=1, path="/drive/v3/files/f1", status=403,
                     body=google_error(403, "User rate limit", "userRateLimitExceeded")))
    api.inject(Fault("status", times=1, path="/drive/v3/files/f1", status=500))
    api.inject(Fault("truncated", times=1, path="/drive/v3/files/f1"))
    api.inject(Fault("reset", times=1, path="/drive/v3/files/f1"))
    assert client.get_json("/drive/v3/files/f1", {"fields": "id"}) == {"id": "f1"}
    # A body cut short fails in requests (ChunkedEncodingError), like a reset connection.
    assert dict(client.policy.retries) == {"429": 3, "500": 1, "connection": 2}
    assert len(api.served("/drive/v3/files/f1")) == 7


def test_retries_run_out_into_an_error_naming_the_request(api: GoogleApi) -> None:
    client = session(api, max_retries=1)
    api.inject(Fault("status", times=5, path="/drive/v3/files/f1", status=503))
    with pytest.raises(RetriesExhaustedError) as caught:
        client.get_json("/drive/v3/files/f1")
    assert "GET /drive/v3/files/f1" in str(caught.value)
    assert exit_codes.describe(caught.value, hint="").exit_code == exit_codes.RETRIABLE


@pytest.mark.parametrize(("status", "reason", "hint"), [
    (403, "forbidden", "the credentials may not read /drive/v3/files/f1: share the file"),
    (404, "notFound", "Google has no /drive/v3/files/f1: check the ids"),
    (400, "badRequest", "Google refused GET /drive/v3/files/f1: check the settings"),
])
def test_refusals_are_fatal_at_once_with_googles_message(
    api: GoogleApi, status: int, reason: str, hint: str
) -> None:
    api.inject(Fault("status", times=1, path="/drive/v3/files/f1", status=status,
                     body=google_error(status, "The fixture says no.", reason)))
    with pytest.raises(FatalApiError) as caught:
        session(api).get_json("/drive/v3/files/f1")
    assert str(caught.value).startswith(hint)
    assert "The fixture says no." in str(caught.value)
    assert len(api.served("/drive/v3/files/f1")) == 1
    assert exit_codes.describe(caught.value, hint="").exit_code == exit_codes.USER_ERROR


def test_an_expired_token_is_refreshed_once_a_second_401_is_fatal(api: GoogleApi) -> None:
    client = session(api)
    client.get_json("/drive/v3/files/f1")
    api.expire_tokens()
    assert client.get_json("/drive/v3/files/f1", {"fields": "id"}) == {"id": "f1"}
    assert api.token_grants == ["refresh_token", "refresh_token"]

    class Always401(GoogleApi):
        def api_route(self, request: Request) -> Response:
            return json_response(401, google_error(401, "Token audience mismatch."))

    stubborn = Always401().start()
    try:
        with pytest.raises(FatalApiError) as caught:
            session(stubborn).get_json("/v1/anything")
        assert str(caught.value).startswith("Google rejected the access token after a "
                                            "refresh")
        assert stubborn.token_grants == ["refresh_token", "refresh_token"]  # one refresh
        assert len(stubborn.served("/v1/anything")) == 2
    finally:
        stubborn.stop()


def test_a_revoked_refresh_token_is_fatal_naming_the_grant_error(api: GoogleApi) -> None:
    client = session(api)
    api.revoke()
    with pytest.raises(FatalApiError) as caught:
        client.get_json("/drive/v3/files/f1")
    line = exit_codes.describe(caught.value, hint="").line
    assert line.startswith("Google refused the credentials: invalid_grant (Token has been "
                           "expired or revoked.); check")
    assert api.refresh_token not in line and api.client_secret not in line


def test_google_auth_exceptions_raised_elsewhere_have_their_exit_codes() -> None:
    from google.auth import exceptions

    refused = exceptions.RefreshError("invalid_grant: Bad Request", {"error": "invalid_grant"})
    failure = exit_codes.describe(refused, hint="", families=exit_codes.KNOWN_FAILURES)
    assert failure.exit_code == exit_codes.USER_ERROR
    assert failure.line.startswith("Google refused the credentials: ")
    unreachable = exceptions.TransportError("connection refused")
    assert exit_codes.describe(unreachable, hint="").exit_code == exit_codes.RETRIABLE


def test_a_failing_token_endpoint_is_transient_after_google_auths_own_retries(
    api: GoogleApi
) -> None:
    """google-auth tries the token endpoint 3 times itself (1 s, 2 s apart); then the
    policy retries the request, which fetches a token again."""
    api.inject(Fault("status", times=3, path="/token", status=503))
    client = session(api)
    assert client.get_json("/drive/v3/files/f1", {"fields": "id"}) == {"id": "f1"}
    assert len(api.served("/token")) == 4 and api.token_grants == ["refresh_token"]
    assert dict(client.policy.retries) == {"token": 1}
