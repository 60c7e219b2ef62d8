"""The API taps' resilience settings: one frozen value, and its ``th`` properties.

The defaults live on :class:`ResilienceSettings`; :func:`settings_properties` declares
them (with each tap's own request rate) for the taps' ``config_jsonschema``, so
``--about``, Meltano and the validated config all read the same values. The policy
that uses them is :mod:`dativo.resilience`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from singer_sdk import typing as th

from dativo.errors import ConfigError

__all__ = ["ResilienceSettings", "settings_properties"]

# Config keys, shared by both API taps' config schemas and docs.
MAX_RETRIES = "max_retries"
BACKOFF_BASE_SECONDS = "backoff_base_seconds"
BACKOFF_MAX_SECONDS = "backoff_max_seconds"
BACKOFF_JITTER = "backoff_jitter"
MAX_RETRY_AFTER_SECONDS = "max_retry_after_seconds"
CIRCUIT_FAILURE_THRESHOLD = "circuit_failure_threshold"
CIRCUIT_COOLDOWN_SECONDS = "circuit_cooldown_seconds"
CIRCUIT_MAX_PROBES = "circuit_max_probes"
REQUESTS_PER_SECOND = "requests_per_second"
REQUEST_TIMEOUT_SECONDS = "request_timeout_seconds"


@dataclass(frozen=True, slots=True)
class ResilienceSettings:
    """Every knob of the policy; built once from a tap's config by :meth:`from_config`."""

    max_retries: int = 8
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    backoff_jitter: float = 0.5
    max_retry_after_seconds: float = 300.0
    circuit_failure_threshold: int = 10
    circuit_cooldown_seconds: float = 30.0
    circuit_max_probes: int = 3
    requests_per_second: float = 25.0
    request_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        checks = {
            MAX_RETRIES: self.max_retries >= 0,
            BACKOFF_BASE_SECONDS: self.backoff_base_seconds >= 0,
            BACKOFF_MAX_SECONDS: self.backoff_max_seconds >= self.backoff_base_seconds,
            BACKOFF_JITTER: 0 <= self.backoff_jitter <= 1,
            MAX_RETRY_AFTER_SECONDS: self.max_retry_after_seconds >= 0,
            CIRCUIT_FAILURE_THRESHOLD: self.circuit_failure_threshold >= 1,
            CIRCUIT_COOLDOWN_SECONDS: self.circuit_cooldown_seconds >= 0,
            CIRCUIT_MAX_PROBES: self.circuit_max_probes >= 1,
            REQUESTS_PER_SECOND: self.requests_per_second >= 0,
            REQUEST_TIMEOUT_SECONDS: self.request_timeout_seconds > 0,
        }
        bad = [key for key, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"invalid resilience setting(s) {', '.join(bad)}: counts and seconds must be "
                f"non-negative, {CIRCUIT_FAILURE_THRESHOLD} and {CIRCUIT_MAX_PROBES} at least 1, "
                f"{BACKOFF_JITTER} between 0 and 1, {BACKOFF_MAX_SECONDS} >= "
                f"{BACKOFF_BASE_SECONDS}; {REQUESTS_PER_SECOND}=0 means unlimited")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **defaults: Any) -> ResilienceSettings:
        """Settings from a tap config; ``defaults`` override the class defaults (e.g. rps)."""
        values: dict[str, Any] = dict(defaults)
        for name, spec in cls.__dataclass_fields__.items():
            value = config.get(name)
            if value is None:
                continue
            try:  # JSON config may hold Decimals or strings (environment variables)
                values[name] = int(value) if spec.type == "int" else float(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"setting {name}={value!r} is not a number") from exc
        return cls(**values)


def settings_properties(*, requests_per_second: float) -> list[th.Property]:
    """Every knob as a ``th.Property``, for a tap's ``th.PropertiesList``.

    Args:
        requests_per_second: The tap's default rate (Stripe 25, HubSpot 10).
    """
    d = ResilienceSettings()

    def number(key: str, default: float, text: str) -> th.Property:
        return th.Property(key, th.NumberType, default=default, description=text)

    def integer(key: str, default: int, text: str) -> th.Property:
        return th.Property(key, th.IntegerType, default=default, description=text)

    return [
        integer(MAX_RETRIES, d.max_retries, "Retries of one request after a 429, 5xx, "
                "timeout, reset or truncated body; then the run stops."),
        number(BACKOFF_BASE_SECONDS, d.backoff_base_seconds, "First retry delay when the "
               "API sent no Retry-After; doubles per retry."),
        number(BACKOFF_MAX_SECONDS, d.backoff_max_seconds, "Cap of the doubling delay."),
        number(BACKOFF_JITTER, d.backoff_jitter, "Up to this fraction of each delay is "
               "taken off at random, so parallel runs spread out (0..1)."),
        number(MAX_RETRY_AFTER_SECONDS, d.max_retry_after_seconds, "Longest Retry-After "
               "honoured; a longer one is cut to this."),
        integer(CIRCUIT_FAILURE_THRESHOLD, d.circuit_failure_threshold, "Consecutive "
                "failures (any request) that open the circuit."),
        number(CIRCUIT_COOLDOWN_SECONDS, d.circuit_cooldown_seconds, "While open, no "
               "request is sent for this long; then one probe."),
        integer(CIRCUIT_MAX_PROBES, d.circuit_max_probes, "Failed half-open probes in a row "
                "after which the run stops cleanly."),
        number(REQUESTS_PER_SECOND, requests_per_second, "Request starts per second "
               "(0 = unlimited)."),
        number(REQUEST_TIMEOUT_SECONDS, d.request_timeout_seconds, "Connect and read "
               "timeout of one request; a timeout is retried."),
    ]
