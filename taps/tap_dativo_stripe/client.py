"""The Stripe transport: the official `stripe` library, paged, under dativo.resilience.

Stripe's own retries are off (``max_network_retries=0``): every retry is decided by the
shared :class:`~dativo.resilience.ResiliencePolicy`, so Retry-After, the circuit breaker
and the rate limit apply the same way in all API taps. Stripe's exceptions are classified
here, at one boundary, into :class:`TransientFailure` or :class:`FatalApiError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import stripe

from dativo.resilience import (
    FatalApiError,
    ResiliencePolicy,
    TransientFailure,
    parse_retry_after,
)
from dativo.secrets import FreshSecret

logger = logging.getLogger(__name__)
PAGE_LIMIT = 100  # Stripe's maximum page size


class StripeTransport:
    """Lists of one Stripe account through a :class:`stripe.StripeClient`."""

    def __init__(self, api_key: str | FreshSecret, *, policy: ResiliencePolicy,
                 api_base: str | None = None, stripe_account: str | None = None,
                 api_version: str | None = None) -> None:
        """``api_key``: the key, or its :class:`FreshSecret` (a secret reference, read
        again when Stripe answers 401, so a rotated key is used without a restart)."""
        self._secret = (api_key if isinstance(api_key, FreshSecret)
                        else FreshSecret(api_key, setting="api_key"))
        # The library logs every request at INFO; ours are counted by the policy instead.
        logging.getLogger("stripe").setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
        self.policy = policy
        self._options = {"stripe_account": stripe_account, "stripe_version": api_version,
                         "base_addresses": {"api": api_base} if api_base else None}
        self.client = self._client()

    def _client(self) -> stripe.StripeClient:
        timeout = self.policy.settings.request_timeout_seconds
        return stripe.StripeClient(
            self._secret.value, **self._options,  # type: ignore[arg-type]
            max_network_retries=0, http_client=stripe.RequestsClient(timeout=timeout))

    def pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Every page of the list at ``path``: ``limit=100``, ``starting_after`` the last id.

        Raises:
            FatalApiError: Stripe refused the request (key, permission, unknown path).
            ApiUnavailableError: retries or the circuit breaker gave up.
        """
        query: dict[str, Any] = {"limit": PAGE_LIMIT, **params}
        while True:
            page = self.policy.call(lambda q=dict(query): self._get(path, q),
                                    what=f"GET {path}")
            data: list[dict[str, Any]] = page["data"]
            yield data
            if not page.get("has_more") or not data:
                return
            query["starting_after"] = data[-1]["id"]

    def _get(self, path: str, query: dict[str, Any]) -> dict[str, Any]:
        """One request; every outcome but a list object becomes one of our errors."""
        try:
            try:
                response = self.client.raw_request("get", path, **query)
            except stripe.AuthenticationError:
                if not self._secret.refreshed():  # the key was not rotated meanwhile
                    raise
                self.client = self._client()
                response = self.client.raw_request("get", path, **query)
        except stripe.StripeError as exc:
            raise self._classify(exc, path) from exc
        data = response.data
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            # A proxy's error page or a half-written body: worth another try.
            raise TransientFailure("bad-body", f"{path} answered without a list object")
        return data

    def _classify(self, exc: stripe.StripeError, path: str) -> Exception:
        status = exc.http_status
        message = self._scrub(str(exc.user_message or exc))
        if isinstance(exc, stripe.APIConnectionError):
            return TransientFailure("connection", message)
        if isinstance(exc, stripe.RateLimitError) or status == 429:
            headers = exc.headers or {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            return TransientFailure("429", retry_after=parse_retry_after(retry_after))
        if status is None or status >= 500 or status == 200:
            # 200 here means the body was not JSON (cut short): worth another try.
            return TransientFailure(str(status or "error"), message)
        hint = {
            401: "Stripe rejected the api_key: set a valid secret or restricted key "
                 "(sk_... / rk_...) in api_key (TAP_DATIVO_STRIPE_API_KEY)",
            403: f"the api_key may not read {path}: grant the restricted key Read access "
                 "to it, or deselect the stream",
            404: f"Stripe knows no {path}: check the stream selection and api_version",
        }.get(status, f"Stripe refused GET {path}: check the expand, api_version and "
                      "account_id settings")
        return FatalApiError(f"{hint} (HTTP {status}, request {exc.request_id}: {message})",
                             status=status, path=path, request_id=exc.request_id)

    def _scrub(self, text: str) -> str:
        """Stripe masks keys in its messages; mask ours anyway, whatever the message."""
        key = self._secret.value
        return text.replace(key, "****") if key else text
