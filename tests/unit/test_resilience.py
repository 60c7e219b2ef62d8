"""dativo.resilience against a real local HTTP server (requests as the transport).

The server counts what it received, so the retry and breaker assertions are exact: how
many requests went out, which of them were faulted, and which error stopped the run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from singer_sdk import typing as th

import dativo.resilience as resilience
from dativo.errors import ConfigError, DativoError
from dativo.resilience import (
    CircuitOpenError,
    FatalApiError,
    RateLimiter,
    ResiliencePolicy,
    RetriesExhaustedError,
    TransientFailure,
    parse_retry_after,
)
from dativo.resilience_settings import ResilienceSettings, settings_properties
from tests.services.http_fixture import Fault, FixtureApi, Request, Response, json_response

FAST = dict(backoff_base_seconds=0.01, backoff_max_seconds=0.05, requests_per_second=0,
            circuit_cooldown_seconds=0.05)


class CountingApi(FixtureApi):
    """GET /n answers {"n": <how many unfaulted requests so far>}."""

    def route(self, request: Request) -> Response:
        return json_response(200, {"n": len(self.served(faulted=False))})


@pytest.fixture
def api() -> Iterator[CountingApi]:
    server = CountingApi().start()
    yield server
    server.stop()


def get(url: str, timeout: float = 5) -> dict[str, Any]:
    """One attempt with requests, classified the way the taps classify."""
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise TransientFailure("connection", type(exc).__name__) from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientFailure(str(response.status_code), retry_after=parse_retry_after(
            response.headers.get("Retry-After")))
    if response.status_code in (401, 403, 404):
        raise FatalApiError(f"status {response.status_code}: check the token",
                            status=response.status_code)
    try:
        return dict(response.json())
    except ValueError as exc:
        raise TransientFailure("truncated") from exc


def policy(sleeps: list[float] | None = None, **settings: Any) -> ResiliencePolicy:
    import time

    def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(round(seconds, 3))
        time.sleep(seconds)

    return ResiliencePolicy(ResilienceSettings(**{**FAST, **settings}), sleep=sleep,
                            rng=random.Random(7))


def test_public_surface_is_pinned() -> None:
    assert sorted(resilience.__all__) == [
        "ApiUnavailableError", "CircuitBreaker", "CircuitOpenError", "FatalApiError",
        "RateLimiter", "ResiliencePolicy", "RetriesExhaustedError", "TransientFailure",
        "parse_retry_after"]


def test_429_storm_honours_retry_after_then_succeeds(api: CountingApi) -> None:
    api.inject(Fault("status", times=4, status=429, retry_after=0.02))
    sleeps: list[float] = []
    p = policy(sleeps)
    assert p.call(lambda: get(f"{api.url}/n"), what="GET /n") == {"n": 1}
    assert [r.fault for r in api.requests] == ["status"] * 4 + [None]
    assert sleeps == [0.02] * 4  # exactly Retry-After, not the backoff
    assert p.summary() == {"attempts": 5, "retries": {"429": 4}, "circuit_opened": 0,
                           "circuit_closed_after_open": 0}


def test_retry_after_is_capped() -> None:
    sleeps: list[float] = []
    p = policy(sleeps, max_retry_after_seconds=0.01)
    calls = iter([TransientFailure("429", retry_after=3600), {"ok": 1}])

    def attempt() -> Any:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert p.call(attempt, what="x") == {"ok": 1}
    assert sleeps == [0.01]


def test_5xx_reset_and_truncated_bodies_are_retried_with_growing_backoff(
    api: CountingApi,
) -> None:
    api.inject(Fault("status", status=500))
    api.inject(Fault("reset"))
    api.inject(Fault("truncated"))
    api.inject(Fault("status", status=503))
    sleeps: list[float] = []
    p = policy(sleeps, backoff_jitter=0.0, backoff_base_seconds=0.001,
               backoff_max_seconds=0.004)
    assert p.call(lambda: get(f"{api.url}/n"), what="GET /n") == {"n": 1}
    assert [r.fault for r in api.requests] == ["status", "reset", "truncated", "status", None]
    assert sleeps == [0.001, 0.002, 0.004, 0.004]  # doubling, capped at backoff_max
    # a body shorter than its Content-Length is a broken connection to requests
    assert p.retries == {"500": 1, "connection": 2, "503": 1}


def test_a_response_slower_than_the_timeout_is_retried(api: CountingApi) -> None:
    api.inject(Fault("slow", delay=1.0))
    p = policy()
    assert p.call(lambda: get(f"{api.url}/n", timeout=0.2), what="GET /n") == {"n": 1}
    assert [r.fault for r in api.requests] == ["slow", None]
    assert p.retries == {"connection": 1}  # requests' ReadTimeout


def test_jitter_shortens_each_delay_by_at_most_the_jitter_fraction() -> None:
    p = policy(backoff_base_seconds=1.0, backoff_max_seconds=8.0, backoff_jitter=0.5)
    delays = [p.backoff_delay(n) for n in (1, 2, 3, 4, 5)]
    for delay, full in zip(delays, (1, 2, 4, 8, 8), strict=True):
        assert full * 0.5 <= delay <= full
    assert len(set(delays)) == 5


def test_retries_exhausted_names_the_request_and_the_setting(api: CountingApi) -> None:
    api.inject(Fault("status", times=10, status=502))
    with pytest.raises(RetriesExhaustedError) as info:
        policy(max_retries=2).call(lambda: get(f"{api.url}/n"), what="GET /n")
    assert len(api.requests) == 3
    assert "GET /n: failed 3 times" in str(info.value)
    assert "max_retries=2" in str(info.value)


def test_fatal_errors_are_not_retried(api: CountingApi) -> None:
    api.inject(Fault("status", status=401))
    with pytest.raises(FatalApiError) as info:
        policy().call(lambda: get(f"{api.url}/n"), what="GET /n")
    assert info.value.status == 401
    assert isinstance(info.value, ConfigError)
    assert len(api.requests) == 1


def test_circuit_opens_waits_for_cool_down_and_closes_on_a_good_probe(
    api: CountingApi,
) -> None:
    api.inject(Fault("status", times=3, status=500))
    sleeps: list[float] = []
    p = policy(sleeps, circuit_failure_threshold=3, circuit_cooldown_seconds=0.5,
               backoff_jitter=0.0, backoff_base_seconds=0.001)
    assert p.call(lambda: get(f"{api.url}/n"), what="GET /n") == {"n": 1}
    assert len(api.requests) == 4  # 3 failures, then one probe, which succeeded
    assert sleeps[:2] == [0.001, 0.002]
    assert len(sleeps) == 3 and sleeps[2] > 0.25  # the breaker's wait, not a backoff
    assert (p.breaker.state, p.breaker.opened, p.breaker.closed_after_open) == ("closed", 1, 1)
    # closed again: the next request goes straight through
    assert p.call(lambda: get(f"{api.url}/n"), what="GET /n") == {"n": 2}
    assert len(api.requests) == 5


def test_a_retry_after_longer_than_the_cool_down_delays_the_probe(api: CountingApi) -> None:
    api.inject(Fault("status", times=2, status=429, retry_after=0.3))
    sleeps: list[float] = []
    p = policy(sleeps, circuit_failure_threshold=2, circuit_cooldown_seconds=0.1)
    assert p.call(lambda: get(f"{api.url}/n"), what="GET /n") == {"n": 1}
    assert sleeps[0] == 0.3  # before the threshold: Retry-After
    assert sleeps[1:] == [0.3]  # open: Retry-After, which covers the shorter cool-down
    assert [r.fault for r in api.requests] == ["status", "status", None]  # the probe
    assert p.breaker.closed_after_open == 1


def test_circuit_stops_the_run_when_probes_keep_failing(api: CountingApi) -> None:
    api.inject(Fault("status", times=100, status=503))
    p = policy(circuit_failure_threshold=3, circuit_max_probes=2, max_retries=50)
    with pytest.raises(CircuitOpenError) as info:
        p.call(lambda: get(f"{api.url}/n"), what="GET /n")
    assert len(api.requests) == 3 + 2  # threshold, then the two failed probes; no hammering
    assert p.breaker.opened == 3
    message = str(info.value)
    assert "2 half-open probe(s)" in message and "circuit_max_probes" in message
    assert isinstance(info.value, DativoError)


def test_breaker_counts_consecutive_failures_across_requests(api: CountingApi) -> None:
    p = policy(circuit_failure_threshold=3, circuit_max_probes=1, max_retries=1)
    api.inject(Fault("status", times=2, status=500))
    with pytest.raises(RetriesExhaustedError):
        p.call(lambda: get(f"{api.url}/n"), what="GET /n")
    api.inject(Fault("status", times=2, status=500))
    with pytest.raises(CircuitOpenError):
        p.call(lambda: get(f"{api.url}/n"), what="GET /n")
    assert len(api.requests) == 4 and p.breaker.opened == 2


def test_rate_limiter_spaces_requests() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))
        now[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert waits == [0.25, 0.25, 0.25, 0.25]
    now[0] += 10  # idle time does not build up a burst allowance beyond one request
    limiter.acquire()
    limiter.acquire()
    assert waits[-1] == 0.25 and len(waits) == 5


def test_unlimited_rate_never_waits() -> None:
    limiter = RateLimiter(0, sleep=lambda s: pytest.fail("slept"))
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_settings_from_config_and_bad_values_name_the_key() -> None:
    s = ResilienceSettings.from_config({"max_retries": 3, "other": 1, "backoff_jitter": None},
                                       requests_per_second=10)
    assert (s.max_retries, s.requests_per_second, s.backoff_jitter) == (3, 10, 0.5)
    assert ResilienceSettings.from_config({"requests_per_second": 2},
                                          requests_per_second=10).requests_per_second == 2
    from decimal import Decimal

    assert ResilienceSettings.from_config({"backoff_base_seconds": Decimal("0.5"),
                                           "max_retries": "4"}).backoff_base_seconds == 0.5
    with pytest.raises(ConfigError, match="max_retries='many' is not a number"):
        ResilienceSettings.from_config({"max_retries": "many"})
    with pytest.raises(ConfigError, match="backoff_jitter, circuit_failure_threshold"):
        ResilienceSettings(backoff_jitter=2, circuit_failure_threshold=0)


def test_settings_jsonschema_covers_every_knob_with_the_taps_rate() -> None:
    props = th.PropertiesList(*settings_properties(requests_per_second=10)).to_dict()[
        "properties"]
    assert sorted(props) == sorted(ResilienceSettings.__dataclass_fields__)
    assert props["requests_per_second"]["default"] == 10
    assert all(p["description"] for p in props.values())


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(("path", "label"), [
    ("/v1/customers/cus_N2XyAbCdEf", "/v1/customers/:id"),
    ("/crm/v3/objects/contacts/123/associations", "/crm/v3/objects/contacts/:id/associations"),
    ("/v4/spreadsheets/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/values:batchGet",
     "/v4/spreadsheets/:id/values:batchGet"),
    ("/drive/v3/files/1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVw/export", "/drive/v3/files/:id/export"),
    ("/drive/v3/changes/startPageToken", "/drive/v3/changes/startPageToken"),
])
def test_object_ids_never_become_metric_labels(path: str, label: str) -> None:
    """One label per endpoint, not per object: Stripe, HubSpot and Google ids are masked,
    endpoint names are kept."""
    assert resilience._ID_SEGMENT.sub("/:id", path) == label
