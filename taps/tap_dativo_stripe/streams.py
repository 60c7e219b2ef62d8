"""Stripe streams: one class per object, all driven by their :class:`StripeObject`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream

from tap_dativo_stripe.schemas import BY_NAME, StripeObject

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_dativo_stripe.client import StripeTransport


def to_utc(value: Any) -> Any:
    """A Stripe Unix timestamp as RFC 3339 UTC; anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
    return value


def to_unix(value: str) -> int:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp())


class StripeStream(Stream):
    """A Stripe list, incremental on ``created``.

    Stripe lists newest first, so the stream is unsorted: singer-sdk keeps the largest
    ``created`` seen and writes it as the bookmark only when the stream has finished, which
    is why the bookmark never moves past an object that was not yet delivered. The next run
    asks for ``created[gte]`` = bookmark - ``lookback_seconds`` (inclusive, so objects
    created in the bookmark's second are sent again rather than lost), then reads the
    events since then to catch updates of older objects (:meth:`_updated_objects`).
    """

    stripe_object: ClassVar[StripeObject]
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = "created"
    is_sorted = False

    def __init__(self, tap: Any) -> None:
        name = self.stripe_object.name
        self.expand: list[str] = list((tap.config.get("expand") or {}).get(name) or [])
        super().__init__(tap, schema=self.stripe_object.json_schema(frozenset(self.expand)),
                         name=name)
        self._known = set(self.schema["properties"]) - {"extra"}
        self._timestamps = self.stripe_object.timestamp_fields  # computed once, used per record

    @property
    def transport(self) -> StripeTransport:
        return self._tap.transport  # type: ignore[attr-defined, no-any-return]

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        since = self._since(context)
        params: dict[str, Any] = dict(self.stripe_object.list_params)
        if since is not None:
            params["created"] = {"gte": since}
        if self.expand:
            params["expand"] = [f"data.{path}" for path in self.expand]
        seen: set[str] = set()
        for page in self.transport.pages(self._path(context), params):
            for obj in page:
                seen.add(obj["id"])
                yield self._record(obj)
        if since is not None and self.stripe_object.event_prefix:
            yield from self._updated_objects(since, seen)

    def _path(self, context: Context | None) -> str:
        return self.stripe_object.path

    def _since(self, context: Context | None) -> int | None:
        start = self.get_starting_replication_key_value(context)
        if not start:
            return None
        return max(0, to_unix(str(start)) - int(self.config.get("lookback_seconds") or 0))

    def _updated_objects(self, since: int, seen: set[str]) -> Iterator[dict[str, Any]]:
        """The newest state of each object an event changed since ``since``.

        Events come newest first, so the first event of an id wins. Objects already read
        from the list this run are current and skipped. A ``*.deleted`` event gives the
        object with ``deleted: true``. Stripe keeps events for 30 days: run more often.
        """
        prefix = self.stripe_object.event_prefix
        params = {"type": f"{prefix}.*", "created": {"gte": since}}
        for page in self.transport.pages("/v1/events", params):
            for event in page:
                obj = (event.get("data") or {}).get("object") or {}
                if obj.get("object") != self.stripe_object.object_type or obj["id"] in seen:
                    continue  # e.g. customer.* also matches customer.subscription.*
                seen.add(obj["id"])
                if str(event.get("type", "")).endswith(".deleted"):
                    obj = {**obj, "deleted": True}
                yield self._record(obj)

    def _record(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Timestamps to UTC strings; fields the schema does not list go to ``extra``.

        Every schema field is present (None when Stripe left it out), so each RECORD has
        the same columns whatever the API version sends.
        """
        record: dict[str, Any] = dict.fromkeys(self._known)
        extra: dict[str, Any] = {}
        for key, value in obj.items():
            (record if key in self._known else extra)[key] = value
        for key in self._timestamps:
            if key in record:
                record[key] = to_utc(record[key])
        record["extra"] = extra or None
        return record


class InvoicesStream(StripeStream):
    stripe_object = BY_NAME["invoices"]

    def get_child_context(self, record: dict[str, Any], context: Context | None) -> dict:
        return {"invoice_id": record["id"]}


class InvoiceLineItemsStream(StripeStream):
    """All lines of each invoice the parent stream delivers (new or updated)."""

    stripe_object = BY_NAME["invoice_line_items"]
    parent_stream_type = InvoicesStream
    replication_key = None  # type: ignore[assignment]
    state_partitioning_keys: ClassVar[list[str]] = []

    def _path(self, context: Context | None) -> str:
        return self.stripe_object.path.format(invoice_id=(context or {})["invoice_id"])

    def _since(self, context: Context | None) -> int | None:
        return None


def _stream(name: str) -> type[StripeStream]:
    return type(f"{name.title().replace('_', '')}Stream", (StripeStream,),
                {"stripe_object": BY_NAME[name], "__doc__": f"Stripe {name}."})


STREAM_TYPES: tuple[type[StripeStream], ...] = (
    _stream("customers"), _stream("charges"), InvoicesStream, InvoiceLineItemsStream,
    _stream("subscriptions"), _stream("products"), _stream("prices"),
    _stream("payment_intents"), _stream("refunds"), _stream("balance_transactions"),
    _stream("events"),
)
